"""Adapters (Houlsby et al. 2019): a small bottleneck inside each residual branch; only it (and the LayerNorms)
train.

Lecture 2.3 (how to fine-tune: adapters); notebook notebooks/06_ways_to_finetune.ipynb.
Each adapter is x + up(GELU(down(x))) with down: H -> m and up: m -> H, m much smaller than H. It sits where
Houlsby puts it: after the projection of the attention output and after the feed-forward's output, before the
Add & Norm. With up's weights near zero it starts near the identity, so the model starts as the pre-trained
one. Pfeiffer et al. (2021) keep only the one after the feed-forward (`placement="pfeiffer"`): half the
parameters, about the same accuracy.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..model.attention import DenseAddNorm

INIT_STD = 1e-3  # Houlsby: near-identity initialisation


class Adapter(nn.Module):
    def __init__(self, hidden_size: int, bottleneck: int):
        super().__init__()
        self.down = nn.Linear(hidden_size, bottleneck)
        self.up = nn.Linear(bottleneck, hidden_size)
        for linear in (self.down, self.up):
            nn.init.normal_(linear.weight, std=INIT_STD)
            nn.init.zeros_(linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.up(F.gelu(self.down(x)))  # the skip keeps it near the identity


class AdapterAddNorm(nn.Module):
    """DenseAddNorm with an adapter: LayerNorm(residual + adapter(dropout(dense(x)))).

    It takes over the original's dense, dropout and LayerNorm, so their state-dict names stay the same."""

    def __init__(self, original: DenseAddNorm, bottleneck: int):
        super().__init__()
        self.dense, self.dropout, self.LayerNorm = original.dense, original.dropout, original.LayerNorm
        self.adapter = Adapter(original.dense.out_features, bottleneck)

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(residual + self.adapter(self.dropout(self.dense(x))))


def add_adapters(encoder: nn.Module, bottleneck: int = 64, placement: str = "houlsby") -> int:
    """Put adapters into every layer of a BertModel's encoder; returns how many."""
    if placement not in ("houlsby", "pfeiffer"):
        raise ValueError(f"placement must be 'houlsby' (two per layer) or 'pfeiffer' (one); got {placement!r}.")
    count = 0
    for layer in encoder.layer:
        if placement == "houlsby":
            layer.attention.output = AdapterAddNorm(layer.attention.output, bottleneck)
            count += 1
        layer.output = AdapterAddNorm(layer.output, bottleneck)
        count += 1
    return count
