"""What a decoder adds to BERT's layer: causal self-attention that can grow one token at a time, and
cross-attention to the encoder's output.

Lecture 2.2 (outputs: a general sequence); notebook notebooks/06_general_sequence.ipynb. Matches `BertLayer`
of transformers' modeling_bert.py with `is_decoder=True, add_cross_attention=True`: the attribute names
(`attention`, `crossattention`, `intermediate`, `output`) give its state-dict keys.

The modules are minibert's own (BertAttention, FeedForwardIn, DenseAddNorm from minibert/model/); only how they
are called is new: keys and values may come from a cache (self-attention) or from the encoder (cross-attention),
so the projections are applied here and the attention kernel is taken from the registry by name.

Shape legend: b batch, n new tokens, m keys (cached + new), s source tokens, h heads, d head size.
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from ..config import BertConfig
from ..model.attention import ATTENTION_FUNCTIONS, BertAttention, DenseAddNorm, MultiHeadSelfAttention, additive_mask
from ..model.embeddings import BertEmbeddings
from ..model.encoder import FeedForwardIn
from .cache import KeyValueCache


def embed(embeddings: BertEmbeddings, input_ids: Tensor, token_type_ids: Tensor, positions: Tensor) -> Tensor:
    """BertEmbeddings at given positions (n) or (b n), not only 0..n-1: a cached step embeds the token at the
    position after the cache, and v2 puts each target right after its own source."""
    x = embeddings.word_embeddings(input_ids) + embeddings.token_type_embeddings(token_type_ids)  # b n (h d)
    x = x + embeddings.position_embeddings(positions)
    return embeddings.dropout(embeddings.LayerNorm(x))


def causal_mask(key_padding: Tensor | None, num_queries: int, num_keys: int, dtype: torch.dtype,
                device: torch.device) -> Tensor:
    """Additive (b 1 n m) mask: query i, at position m - n + i, sees the keys up to its own position.

    `key_padding` (b m) is 1 for a real key, 0 for padding, or None when all are real (then b is 1).
    """
    past = num_keys - num_queries
    keep = torch.ones(num_queries, num_keys, dtype=torch.bool, device=device).tril(diagonal=past)  # n m
    keep = keep[None] if key_padding is None else keep & key_padding[:, None, :].bool()           # b n m
    return additive_mask(keep, dtype)


def _heads(linear: nn.Linear, x: Tensor, num_heads: int) -> Tensor:
    return rearrange(linear(x), "b n (h d) -> b h n d", h=num_heads)


def _kernel(attention: MultiHeadSelfAttention, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    kernel = ATTENTION_FUNCTIONS[attention.config.attn_implementation]
    context, _ = kernel(q, k, v, mask, attention.dropout_p if attention.training else 0.0)
    return rearrange(context, "b h n d -> b n (h d)")


def cached_self_attention(block: BertAttention, x: Tensor, mask: Tensor | None, cache: KeyValueCache | None,
                          layer: int) -> Tensor:
    """Self-attention of the new tokens x (b n (h d)) over the cached keys and their own; Add & Norm."""
    attention = block.self
    q, k, v = (_heads(linear, x, attention.num_heads) for linear in (attention.query, attention.key, attention.value))
    if cache is not None:
        k, v = cache.append(layer, k, v)                           # b h m d: the past and the new tokens
    return block.output(_kernel(attention, q, k, v, mask), residual=x)


def cross_attention(block: BertAttention, x: Tensor, memory: Tensor, mask: Tensor | None,
                    cache: KeyValueCache | None, layer: int) -> Tensor:
    """The decoder's queries x (b n (h d)) over the encoder's output `memory` (b s (h d)); Add & Norm."""
    attention = block.self
    q = _heads(attention.query, x, attention.num_heads)
    if cache is not None and cache.cross_attention[layer] is not None:
        k, v = cache.cross_attention[layer]                        # the encoder's output has not changed
    else:
        k, v = (_heads(linear, memory, attention.num_heads) for linear in (attention.key, attention.value))
        if cache is not None:
            cache.cross_attention[layer] = (k, v)
    return block.output(_kernel(attention, q, k, v, mask), residual=x)


class BertDecoderLayer(nn.Module):
    """Causal self-attention, cross-attention to the encoder, feed-forward: each with Add & Norm (post-LN)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.crossattention = BertAttention(config)  # query from the decoder, key and value from the encoder
        self.intermediate = FeedForwardIn(config)
        self.output = DenseAddNorm(config.intermediate_size, config)

    def forward(self, x: Tensor, mask: Tensor | None, memory: Tensor, memory_mask: Tensor | None,
                cache: KeyValueCache | None, layer: int) -> Tensor:
        x = cached_self_attention(self.attention, x, mask, cache, layer)
        x = cross_attention(self.crossattention, x, memory, memory_mask, cache, layer)
        return self.output(self.intermediate(x), residual=x)
