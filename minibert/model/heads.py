"""The fine-tuning heads: one class from [CLS], a class per token, a span's start and end.

Lecture 2.2 (outputs); the notebooks of section 2.2 (sentence classification, token classification, extractive
QA). Each head is one linear layer on the encoder, and the whole model is trained
(lecture 2.3 shows the other ways). Matches `BertForSequenceClassification`, `BertForTokenClassification` and
`BertForQuestionAnswering` of Hugging Face's modeling_bert.py to 1e-5, with its state-dict names (`bert.`,
`classifier.`, `qa_outputs.`), so task checkpoints load and save both ways (tests/test_task_heads.py).

Shape legend: b batch, n tokens, (h d) hidden size, c classes (config.num_labels).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoint import CheckpointMismatchError
from ..config import BertConfig, default_labels
from .bert import BertModel, BertPreTrainedModel
from .pretraining import IGNORE_INDEX


@dataclass
class SequenceClassifierOutput:
    loss: Tensor | None = None
    logits: Tensor | None = None                 # b c (b 1 for regression: the predicted number)
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class TokenClassifierOutput:
    loss: Tensor | None = None
    logits: Tensor | None = None                 # b n c
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class QuestionAnsweringModelOutput:
    loss: Tensor | None = None                   # mean of the start and the end cross-entropy
    start_logits: Tensor | None = None           # b n: how likely each token is to start the answer
    end_logits: Tensor | None = None             # b n: ... to end it
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


def labels_config(labels: int | list[str] | dict[int, str]) -> dict[int, str]:
    """id2label from a number of classes, a list of class names, or id2label itself."""
    if isinstance(labels, int):
        return default_labels(labels)
    if isinstance(labels, dict):
        return {int(k): str(v) for k, v in labels.items()}
    return dict(enumerate(map(str, labels)))


class BertForTaskPreTrainedModel(BertPreTrainedModel):
    """What the three heads share: a fresh head on a pre-trained encoder, and a clear error when a fine-tuned
    checkpoint's head does not fit the labels asked for."""

    ignored_prefixes = ("cls.",)  # the pre-training heads of a BertForPreTraining checkpoint
    head_name = "classifier"

    @classmethod
    def from_pretrained(cls, folder: str | Path, labels: int | list[str] | dict[int, str] | None = None,
                        **config_overrides):
        """`labels`: the classes of the task (a number, names, or id2label); None keeps the checkpoint's.

        From an encoder (MiniLM, a pre-trained minibert) the head starts fresh; from a fine-tuned model of the
        same task its head is loaded, and must have as many classes as `labels`."""
        if labels is not None:
            config_overrides["id2label"] = labels_config(labels)
        try:
            return super().from_pretrained(folder, **config_overrides)
        except CheckpointMismatchError as err:
            if labels is None or f"{cls.head_name}." not in str(err):
                raise
            saved = BertConfig.from_json(Path(folder) / "config.json")
            raise ValueError(
                f"{folder} holds a head trained for {saved.num_labels} classes ({', '.join(saved.label2id)}), "
                f"but the task has {len(config_overrides['id2label'])} "
                f"({', '.join(config_overrides['id2label'].values())}). Fine-tune from the encoder the model "
                "started from (e.g. the pre-trained checkpoint) to train a new head, or give it data with the "
                "checkpoint's labels.") from err

    def _dropout_probability(self) -> float:
        config = self.config
        return config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob


class BertForSequenceClassification(BertForTaskPreTrainedModel):
    """One class (or one number) per input: pooled [CLS] -> dropout -> linear. A sentence or a pair."""

    fresh_prefixes = ("classifier.", "bert.pooler.")  # a BertForMaskedLM checkpoint has no pooler either

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(self._dropout_probability())
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.classifier.apply(self._init_module)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None,
                labels: Tensor | None = None, output_hidden_states: bool = False,
                output_attentions: bool = False) -> SequenceClassifierOutput:
        """`labels` (b): class numbers (long), or numbers to predict (float) when num_labels is 1."""
        out = self.bert(input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions)
        logits = self.classifier(self.dropout(out.pooler_output))  # b (h d) -> b c
        loss = self.loss(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss, logits, out.hidden_states, out.attentions)

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """MSE for one output, cross-entropy for classes, binary cross-entropy per class for several labels."""
        if self.config.problem_type is None:
            # transformers decides once, at the first loss, and writes the decision into the config it saves
            if self.num_labels == 1:
                self.config.problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                self.config.problem_type = "single_label_classification"
            else:
                self.config.problem_type = "multi_label_classification"
        if self.config.problem_type == "regression":
            if self.num_labels == 1:
                return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
            return F.mse_loss(logits, labels.to(logits.dtype))
        if self.config.problem_type == "single_label_classification":
            return F.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


class BertForTokenClassification(BertForTaskPreTrainedModel):
    """One class per token (named entities, parts of speech): last hidden state -> dropout -> linear.

    Labels are -100 where nothing is to be learnt: padding, [CLS], [SEP] and the later pieces of a word
    (finetune/batching.py puts a word's label on its first piece)."""

    fresh_prefixes = ("classifier.",)
    ignored_prefixes = ("cls.", "bert.pooler.")  # no pooler: a token head never reads the [CLS] summary

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(self._dropout_probability())
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.classifier.apply(self._init_module)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None,
                labels: Tensor | None = None, output_hidden_states: bool = False,
                output_attentions: bool = False) -> TokenClassifierOutput:
        """`labels` (b n): a class number per token, -100 where the token is not scored."""
        out = self.bert(input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions)
        logits = self.classifier(self.dropout(out.last_hidden_state))  # b n (h d) -> b n c
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1), ignore_index=IGNORE_INDEX)
        return TokenClassifierOutput(loss, logits, out.hidden_states, out.attentions)


class BertForQuestionAnswering(BertForTaskPreTrainedModel):
    """Extractive QA: two scores per token, for starting and for ending the answer span (no dropout, as in
    transformers). `config.num_labels` is 2: the start and the end."""

    fresh_prefixes = ("qa_outputs.",)
    ignored_prefixes = ("cls.", "bert.pooler.")
    head_name = "qa_outputs"

    def __init__(self, config: BertConfig):
        if config.num_labels != 2:
            raise ValueError(f"a question-answering head scores a start and an end, so num_labels must be 2; the "
                             f"config has {config.num_labels} ({config.id2label}). Leave id2label unset.")
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.qa_outputs.apply(self._init_module)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None,
                start_positions: Tensor | None = None, end_positions: Tensor | None = None,
                output_hidden_states: bool = False, output_attentions: bool = False) -> QuestionAnsweringModelOutput:
        """`start_positions`, `end_positions` (b): the answer's first and last token; 0 ([CLS]) when the
        window does not hold the answer."""
        out = self.bert(input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions)
        logits = self.qa_outputs(out.last_hidden_state)  # b n (h d) -> b n 2
        start_logits, end_logits = logits[..., 0].contiguous(), logits[..., 1].contiguous()  # b n each
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = span_loss(start_logits, end_logits, start_positions.reshape(-1), end_positions.reshape(-1),
                             attention_mask)
        return QuestionAnsweringModelOutput(loss, start_logits, end_logits, out.hidden_states, out.attentions)


def span_loss(start_logits: Tensor, end_logits: Tensor, start_positions: Tensor, end_positions: Tensor,
              attention_mask: Tensor | None = None) -> Tensor:
    """(CE(start) + CE(end)) / 2 over the real tokens. A position past the window (n or more) is clamped to n
    and not counted, as in transformers.

    One difference from transformers: its softmax also runs over the padding, whose logits are whatever the
    encoder computed there (minibert's fast path computes nothing there, model/fast/packing.py). An answer never starts in
    the padding, so the padding is left out; without padding the two losses are the same.
    """
    n = start_logits.shape[1]
    if attention_mask is not None:
        padding = attention_mask == 0
        start_logits = start_logits.masked_fill(padding, torch.finfo(start_logits.dtype).min)
        end_logits = end_logits.masked_fill(padding, torch.finfo(end_logits.dtype).min)
    start_positions, end_positions = start_positions.clamp(0, n), end_positions.clamp(0, n)
    start = F.cross_entropy(start_logits, start_positions, ignore_index=n)
    end = F.cross_entropy(end_logits, end_positions, ignore_index=n)
    return (start + end) / 2


TASK_HEADS = {cls.__name__: cls for cls in (BertForSequenceClassification, BertForTokenClassification,
                                            BertForQuestionAnswering)}


def config_with_labels(config: BertConfig, labels: int | list[str] | dict[int, str]) -> BertConfig:
    """A copy of `config` for a head with these classes."""
    return dataclasses.replace(config, id2label=labels_config(labels))
