"""BertForPreTraining and BertForMaskedLM: the encoder with the two heads BERT was pre-trained with.

Lecture lectures/pretraining.md (masked language model, next-sentence prediction); notebook
notebooks/03_pretraining.ipynb. Matches `BertForPreTraining` / `BertForMaskedLM` of Hugging Face's
modeling_bert.py to 1e-5 (tests/test_pretraining_model.py). The attribute names are its state-dict names:
`cls.predictions.transform.dense`, `cls.predictions.decoder`, `cls.predictions.bias`, `cls.seq_relationship`.

Shape legend: b batch, n tokens, (h d) hidden size, v vocabulary size, k tokens that carry an MLM label.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import BertConfig
from .bert import BertModel, BertPreTrainedModel
from .encoder import ACTIVATION_FUNCTIONS

IGNORE_INDEX = -100  # the label of every token the MLM loss must not count


@dataclass
class BertForPreTrainingOutput:
    loss: Tensor | None = None                   # mlm_loss + nsp_loss, when labels are given
    prediction_logits: Tensor | None = None      # b n v (or k v with masked_positions_only)
    seq_relationship_logits: Tensor | None = None  # b 2: column 0 IsNext, column 1 NotNext
    mlm_loss: Tensor | None = None               # mean cross-entropy over the labelled tokens
    nsp_loss: Tensor | None = None               # mean cross-entropy of the sentence-pair labels
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class BertMaskedLMOutput:
    loss: Tensor | None = None
    logits: Tensor | None = None                 # b n v (or k v with masked_positions_only)
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


class BertPredictionHeadTransform(nn.Module):
    """dense -> activation -> LayerNorm: one more layer between the encoder and the vocabulary."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = ACTIVATION_FUNCTIONS[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.LayerNorm(self.activation(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    """Scores every vocabulary word at every position: transform, then x @ E^T + bias.

    `decoder.weight` is the word-embedding table E itself (tied by the model that owns both): a word's input
    vector and its output vector are the same, which saves v x (h d) parameters and trains E from both ends.
    Only the bias is the head's own; `decoder.bias` is that same tensor, as in Hugging Face.
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.decoder.bias = self.bias

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.transform(x))  # b n (h d) -> b n v


class BertPreTrainingHeads(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)  # on the pooled [CLS]: IsNext / NotNext


class BertOnlyMLMHead(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)


TIED_DECODER = {
    "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
    "cls.predictions.decoder.bias": "cls.predictions.bias",
}


def _tie_decoder(model: BertPreTrainedModel) -> None:
    model.cls.predictions.decoder.weight = model.bert.embeddings.word_embeddings.weight


def _labelled_rows(hidden: Tensor, labels: Tensor | None) -> Tensor:
    """b n (h d) -> k (h d): only the tokens that carry an MLM label."""
    if labels is None:
        raise ValueError("masked_positions_only=True needs labels: they say which positions to score.")
    return hidden[labels != IGNORE_INDEX]


def mlm_loss(logits: Tensor, labels: Tensor, masked_positions_only: bool) -> Tensor:
    """Mean cross-entropy over the labelled tokens only; every other label is -100 and counts for nothing."""
    targets = labels[labels != IGNORE_INDEX] if masked_positions_only else labels.reshape(-1)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets, ignore_index=IGNORE_INDEX)


class BertForPreTraining(BertPreTrainedModel):
    """BERT with both pre-training heads: masked-word prediction on every token, NSP on the pooled [CLS]."""

    tied_weights = TIED_DECODER
    # A bare encoder checkpoint (like MiniLM) has no heads: they start fresh, listed in `model.fresh_weights`.
    fresh_prefixes = ("cls.", "bert.pooler.")
    ignored_prefixes = ()

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config)
        self.cls = BertPreTrainingHeads(config)
        self.cls.apply(self._init_module)
        _tie_decoder(self)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None,
                labels: Tensor | None = None, next_sentence_label: Tensor | None = None,
                output_hidden_states: bool = False, output_attentions: bool = False,
                masked_positions_only: bool = False) -> BertForPreTrainingOutput:
        """`labels` (b n): the original id where a token was selected for MLM, -100 elsewhere.
        `next_sentence_label` (b): 0 if segment B really follows segment A (IsNext), 1 if not (NotNext).
        `masked_positions_only`: score the vocabulary only where labels != -100, as Google's original code
        does; the loss is the same and the head costs ~7x less, but prediction_logits is then (k v).
        """
        out = self.bert(input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions)
        hidden = out.last_hidden_state
        if masked_positions_only:
            hidden = _labelled_rows(hidden, labels)
        prediction_logits = self.cls.predictions(hidden)
        seq_relationship_logits = self.cls.seq_relationship(out.pooler_output)  # b 2

        loss = masked = nsp = None
        if labels is not None:
            masked = mlm_loss(prediction_logits, labels, masked_positions_only)
            loss = masked
        if next_sentence_label is not None:
            nsp = F.cross_entropy(seq_relationship_logits, next_sentence_label.reshape(-1))
            loss = nsp if loss is None else loss + nsp
        return BertForPreTrainingOutput(loss, prediction_logits, seq_relationship_logits, masked, nsp,
                                        out.hidden_states, out.attentions)


class BertForMaskedLM(BertPreTrainedModel):
    """BERT with the MLM head only, and no pooler (as in Hugging Face): the fill-in-the-[MASK] model."""

    tied_weights = TIED_DECODER
    fresh_prefixes = ("cls.",)
    ignored_prefixes = ("cls.seq_relationship.", "bert.pooler.")  # parts of a BertForPreTraining checkpoint

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.cls.apply(self._init_module)
        _tie_decoder(self)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None,
                labels: Tensor | None = None, output_hidden_states: bool = False, output_attentions: bool = False,
                masked_positions_only: bool = False) -> BertMaskedLMOutput:
        out = self.bert(input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions)
        hidden = _labelled_rows(out.last_hidden_state, labels) if masked_positions_only else out.last_hidden_state
        logits = self.cls.predictions(hidden)
        loss = mlm_loss(logits, labels, masked_positions_only) if labels is not None else None
        return BertMaskedLMOutput(loss, logits, out.hidden_states, out.attentions)
