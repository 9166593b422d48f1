"""Segment-level recurrence with relative positions (Transformer-XL): a long text read one segment at a time.

Lecture 1.3 (models for long sequences); notebook notebooks/04_long_sequences.ipynb. The mechanism of
Transformer-XL (Dai et al. 2019; `RelPartialLearnableMultiHeadAttn` of its reference code, whose parameter
names `qkv_net`, `r_net`, `o_net`, `r_w_bias`, `r_r_bias` this file keeps). No parity test with a reference
(transformers 5 dropped TransfoXL): tests/test_long_recurrence.py proves the properties instead.

Each layer keeps the hidden states it received for the previous segment as a memory. The next segment's
queries attend to the memory and to their own segment (causally: a token sees what came before it), so
information travels one segment further back per layer. The memory is detached: no gradient flows into the
previous segment, which is what keeps the cost of a step that of one segment.
Absolute positions would say "position 3" for the third token of every segment, so the attention uses relative
ones: Transformer-XL's score of query i and key j, with R the sinusoidal encoding of the distance i - j,
    (q_i + u) . k_j            content: what is there            (u = r_w_bias, one per head)
  + (q_i + v) . W_r R_{i-j}    position: how far back it is      (v = r_r_bias, W_r = r_net)
all over sqrt(d). Here the second term is computed for every distance once and then picked by distance
(a gather), rather than with the reference code's pad-and-reshape "relative shift": the same numbers, readably.

Shape legend: b batch, h heads, n tokens in the segment, m memory tokens, l = m + n keys, d head size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..config import BertConfig
from ..model.attention import DenseAddNorm
from ..model.encoder import FeedForwardIn


def sinusoid(distances: Tensor, size: int) -> Tensor:
    """(l,) distances -> (l, size): the Transformer's sine/cosine encoding (Transformer-XL's, sin then cos)."""
    inverse_frequency = 1.0 / 10000 ** (torch.arange(0, size, 2, dtype=torch.float32) / size)
    angles = distances.float()[:, None] * inverse_frequency  # l (size/2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class RelativeSelfAttention(nn.Module):
    """Causal self-attention over [memory; segment] with Transformer-XL's relative position scores."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.num_heads, self.head_dim = config.num_attention_heads, config.head_dim
        self.qkv_net = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=False)
        self.r_net = nn.Linear(config.hidden_size, config.hidden_size, bias=False)  # W_r: distances -> keys
        self.r_w_bias = nn.Parameter(torch.zeros(self.num_heads, self.head_dim))  # u: content bias
        self.r_r_bias = nn.Parameter(torch.zeros(self.num_heads, self.head_dim))  # v: position bias
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, x: Tensor, memory: Tensor | None = None) -> Tensor:
        """x (b n (h d)), memory (b m (h d)) or None -> (b n (h d))."""
        n = x.shape[1]
        m = 0 if memory is None else memory.shape[1]
        context = x if memory is None else torch.cat([memory, x], dim=1)  # b l (h d)
        q, k, v = rearrange(self.qkv_net(context), "b l (three h d) -> three b h l d", three=3, h=self.num_heads)
        q = q[:, :, m:]  # queries only for the segment; keys and values for memory and segment
        content = (q + self.r_w_bias[:, None]) @ k.transpose(-1, -2)  # b h n l

        # every distance 0 .. l - 1 once, then each (query, key) pair picks its own: query i is at position m + i
        distances = torch.arange(m + n)
        r = rearrange(self.r_net(sinusoid(distances, x.shape[-1])), "l (h d) -> h l d", h=self.num_heads)
        by_distance = (q + self.r_r_bias[:, None]) @ r.transpose(-1, -2)  # b h n l: column t = distance t
        distance = (m + torch.arange(n))[:, None] - torch.arange(m + n)  # n l; negative = a future key
        position = by_distance.gather(-1, distance.clamp(min=0).expand(*by_distance.shape[:2], -1, -1))

        scores = (content + position) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(distance < 0, torch.finfo(scores.dtype).min)  # causal: no future keys
        probs = F.dropout(scores.softmax(dim=-1), self.dropout_p, self.training)
        return rearrange(probs @ v, "b h n d -> b n (h d)")


class RecurrentLayer(nn.Module):
    """BERT's layer (attention, Add & Norm, feed-forward, Add & Norm) with the relative, memory-reading attention."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = RelativeSelfAttention(config)
        self.attention_output = DenseAddNorm(config.hidden_size, config)
        self.intermediate = FeedForwardIn(config)
        self.output = DenseAddNorm(config.intermediate_size, config)

    def forward(self, x: Tensor, memory: Tensor | None) -> Tensor:
        x = self.attention_output(self.attention(x, memory), residual=x)
        return self.output(self.intermediate(x), residual=x)


@dataclass
class RecurrentOutput:
    last_hidden_state: Tensor  # b n (h d)
    mems: list[Tensor]         # per layer, the memory for the next segment: b m (h d), detached


class RecurrentEncoder(nn.Module):
    """Word embeddings (no position table: positions are relative) and a stack of RecurrentLayers.

    `model(segment_ids, mems)` returns the segment's hidden states and the mems for the next segment: each layer's
    input for the last `mem_len` tokens of [memory; segment].
    """

    def __init__(self, config: BertConfig, mem_len: int):
        super().__init__()
        self.mem_len = mem_len
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(RecurrentLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, input_ids: Tensor, mems: list[Tensor] | None = None) -> RecurrentOutput:
        if mems is not None and len(mems) != len(self.layers):
            raise ValueError(f"mems must hold one memory per layer ({len(self.layers)}); got {len(mems)}. Pass "
                             "the mems of the previous segment's output as they are, or None for the first segment.")
        x = self.word_embeddings(input_ids)
        new_mems = []
        for i, layer in enumerate(self.layers):
            memory = None if mems is None else mems[i]
            # what this layer read, kept for the next segment; detached: no gradient into earlier segments
            seen = x if memory is None else torch.cat([memory, x], dim=1)
            new_mems.append(seen[:, -self.mem_len:].detach() if self.mem_len else seen[:, :0].detach())
            x = layer(x, memory)
        return RecurrentOutput(x, new_mems)
