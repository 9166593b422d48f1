"""Prefix tuning (Li & Liang 2021): learned keys and values put in front of every layer's own.

Lecture 2.3 (how to fine-tune, beyond the lecture); notebook notebooks/06_ways_to_finetune.ipynb.
Every layer's attention sees p extra positions whose keys and values are trained; no token is added to the
input and no weight of BERT changes. Training the L x 2 x p x H numbers directly is unstable, so (as the paper
does) they come from a small MLP over p learned vectors while training; `merge` computes them once and drops
the MLP, which leaves L x 2 x p x H numbers per task.

The registry's plug-in point (model/attention.py): each layer's `attention.self` is replaced by
`PrefixSelfAttention`, which prepends the prefix and then calls the same kernel; the encoder is untouched.
Shape legend: b batch, p prefix length, n tokens, h heads, d head size, L layers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from ..model.attention import ATTENTION_FUNCTIONS, MultiHeadSelfAttention


class PrefixEncoder(nn.Module):
    """p learned vectors -> MLP -> the keys and values of every layer, (L 2 p (h d))."""

    def __init__(self, num_layers: int, hidden_size: int, num_virtual_tokens: int, projection_size: int = 512):
        super().__init__()
        self.shape = (num_layers, 2, num_virtual_tokens, hidden_size)
        self.embedding = nn.Parameter(torch.randn(num_virtual_tokens, hidden_size) * 0.02)
        self.mlp = nn.Sequential(nn.Linear(hidden_size, projection_size), nn.Tanh(),
                                 nn.Linear(projection_size, num_layers * 2 * hidden_size))
        self.merged: Tensor | None = None  # after `merge`: the keys and values themselves, trained no more

    def forward(self) -> Tensor:
        if self.merged is not None:
            return self.merged
        out = self.mlp(self.embedding)  # p (L 2 (h d))
        return rearrange(out, "p (l two hd) -> l two p hd", l=self.shape[0], two=2)

    def merge(self) -> None:
        """Keep the computed keys and values as one parameter and drop the MLP (what a task needs to store)."""
        with torch.no_grad():
            values = self().detach().clone()
        self.merged = nn.Parameter(values)
        del self.mlp, self.embedding


class PrefixSelfAttention(nn.Module):
    """MultiHeadSelfAttention with p trained key/value positions in front; the same projections and kernel."""

    def __init__(self, original: MultiHeadSelfAttention, prefixes: PrefixEncoder, layer_index: int):
        super().__init__()
        self.config, self.num_heads, self.dropout_p = original.config, original.num_heads, original.dropout_p
        self.query, self.key, self.value = original.query, original.key, original.value
        self.layer_index = layer_index
        self._prefixes = [prefixes]  # a list: not registered here, so its weights are not listed once per layer

    def forward(self, x: Tensor, mask: Tensor | None = None, output_attentions: bool = False, **options):
        b, h = x.shape[0], self.num_heads
        prefix_k, prefix_v = self._prefixes[0]()[self.layer_index]  # p (h d) each
        q = rearrange(self.query(x), "b n (h d) -> b h n d", h=h)
        k = torch.cat([repeat(prefix_k, "p (h d) -> b h p d", b=b, h=h),
                       rearrange(self.key(x), "b n (h d) -> b h n d", h=h)], dim=2)    # b h (p + n) d
        v = torch.cat([repeat(prefix_v, "p (h d) -> b h p d", b=b, h=h),
                       rearrange(self.value(x), "b n (h d) -> b h n d", h=h)], dim=2)
        if mask is not None:
            mask = F.pad(mask, (prefix_k.shape[0], 0))  # every query may look at every prefix position: 0 added
        kernel = ATTENTION_FUNCTIONS["eager" if output_attentions else self.config.attn_implementation]
        context, probs = kernel(q, k, v, mask, self.dropout_p if self.training else 0.0, **options)
        return rearrange(context, "b h n d -> b n (h d)"), probs


def add_prefix(bert: nn.Module, num_virtual_tokens: int = 20, projection_size: int = 512) -> PrefixEncoder:
    config = bert.config
    bert.prefix_encoder = PrefixEncoder(config.num_hidden_layers, config.hidden_size, num_virtual_tokens,
                                        projection_size)
    for i, layer in enumerate(bert.encoder.layer):
        layer.attention.self = PrefixSelfAttention(layer.attention.self, bert.prefix_encoder, i)
    return bert.prefix_encoder
