"""Temporary: the attention registry's names, until it lands on main (then this file goes, and the modules import
from minibert.model.attention directly)."""
from __future__ import annotations

import math

from torch import Tensor

from ..model.dropout import dropout

try:
    from ..model.attention import ATTENTION_FUNCTIONS, additive_mask, eager_attention, register_attention
except ImportError:
    from ..model.bert import additive_mask  # noqa: F401

    ATTENTION_FUNCTIONS: dict = {}

    def register_attention(name: str):
        def add(kernel):
            ATTENTION_FUNCTIONS[name] = kernel
            return kernel
        return add

    def eager_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0):
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores + mask
        probs = scores.softmax(dim=-1)
        return dropout(probs, dropout_p) @ v, probs
