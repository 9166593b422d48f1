"""The decoder of v1: BERT's layers with causal self-attention and cross-attention, and the MLM head on top.

Lecture 2.2 (outputs: a general sequence, v1: a decoder of our own after the pre-trained encoder); notebook
notebooks/06_general_sequence.ipynb. Matches transformers' `BertLMHeadModel` with `is_decoder=True,
add_cross_attention=True` (modeling_bert.py): its state-dict names (`bert.embeddings`,
`bert.encoder.layer.{i}.crossattention.self.query`, `cls.predictions` ...), so a BERT checkpoint warm-starts it
(BERT2BERT, Rothe et al. 2020: every weight but the cross-attention comes from BERT) and transformers' saved
decoders load. Tests: tests/test_seq2seq_parity.py.

Shape legend: b batch, n new target tokens, m target tokens seen (cached + new), s source tokens,
(h d) hidden size, v vocabulary size.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config import BertConfig
from ..model.attention import additive_mask
from ..model.bert import BertPreTrainedModel
from ..model.embeddings import BertEmbeddings
from ..model.pretraining import TIED_DECODER, BertOnlyMLMHead, _tie_decoder
from .cache import KeyValueCache
from .layers import BertDecoderLayer, causal_mask, embed


@dataclass
class CausalLMOutput:
    logits: Tensor                       # b n v: scores of the next token after each target token
    cache: KeyValueCache | None = None   # the same cache object, now holding these positions too


class BertDecoderStack(nn.Module):
    """Only a list of layers: the module that gives the state-dict names `bert.encoder.layer.{i}`."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertDecoderLayer(config) for _ in range(config.num_hidden_layers))


class BertDecoderModel(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertDecoderStack(config)  # HF's name, though these layers decode


class BertLMHeadModel(BertPreTrainedModel):
    """Target tokens so far (and the encoder's output) -> scores of the next target token at every position."""

    tied_weights = TIED_DECODER
    ignored_prefixes = ("bert.pooler.", "cls.seq_relationship.")  # parts of a BERT checkpoint a decoder lacks

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertDecoderModel(config)
        self.cls = BertOnlyMLMHead(config)
        self.init_weights()
        _tie_decoder(self)
        # What a BERT checkpoint cannot hold: BERT never attended to an encoder; a bare encoder has no MLM head.
        self.fresh_prefixes = ("cls.", *(f"bert.encoder.layer.{i}.crossattention."
                                         for i in range(config.num_hidden_layers)))

    def forward(self, input_ids: Tensor, encoder_hidden_states: Tensor, attention_mask: Tensor | None = None,
                encoder_attention_mask: Tensor | None = None, cache: KeyValueCache | None = None,
                logits_to_keep: int = 0) -> CausalLMOutput:
        """input_ids (b n): the new target tokens, after the `cache.length` ones already in the cache.
        attention_mask (b m): 1 for real target tokens, 0 for padding, over cached and new tokens (None: all real).
        encoder_hidden_states (b s (h d)) and encoder_attention_mask (b s): the encoder's output and its padding.
        logits_to_keep: score only the last few positions (0: all), as transformers' argument of that name;
        generation needs only the last, and the vocabulary projection is the decoder's biggest matmul.
        """
        past = cache.length if cache is not None else 0
        n = input_ids.shape[1]
        if past + n > self.config.max_position_embeddings:
            raise ValueError(f"the target would reach position {past + n} but the decoder's position table has "
                             f"{self.config.max_position_embeddings} rows: lower max_new_tokens.")
        positions = torch.arange(past, past + n, device=input_ids.device)
        x = embed(self.bert.embeddings, input_ids, torch.zeros_like(input_ids), positions)  # b n (h d)
        # one new token with no padding sees every key: no mask at all lets the fused kernel take its fastest path
        mask = None if n == 1 and attention_mask is None else causal_mask(attention_mask, n, past + n, x.dtype,
                                                                           x.device)
        memory_mask = None if encoder_attention_mask is None else additive_mask(encoder_attention_mask, x.dtype)
        for i, layer in enumerate(self.bert.encoder.layer):
            x = layer(x, mask, encoder_hidden_states, memory_mask, cache, i)
        return CausalLMOutput(self.cls.predictions(x[:, -logits_to_keep:] if logits_to_keep else x), cache)

    def new_cache(self) -> KeyValueCache:
        return KeyValueCache(self.config.num_hidden_layers)
