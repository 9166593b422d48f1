"""The fast attention kernel, "sdpa" (the default): the textbook formula's numbers, computed faster.

The fast path; lecture 1.1 (the Transformer encoder); benchmarks/README.md, "Speed". tests/test_fast_path.py
proves it equal to `eager_attention` (model/attention.py), outputs and gradients.
- Whenever there is no dropout to draw on a CPU: PyTorch's fused kernel, which never materialises the (n x m)
  probabilities (FlashAttention's idea).
- CPU training, where the fused kernel has no dropout: the formula, with dropout's 1 / (1 - p) moved onto the
  (n x d) result and a cheaper mask (fast/dropout.py); a few heads at a time when the scores would not fit in
  the cache (fast/blocked_attention.py).

Shape legend: b batch, h heads, n query tokens, m key tokens, d head size.
"""
from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor

from ..attention import register_attention
from .blocked_attention import blocked_attention_with_dropout, scores_fit_in_cache
from .dropout import drop_mask, zero_dropped


def fused_kernel_runs(q: Tensor, dropout_p: float) -> bool:
    """Whether `sdpa_attention` hands its work to PyTorch's fused kernel: it has no dropout on a CPU."""
    return dropout_p == 0.0 or q.device.type != "cpu"


@register_attention("sdpa")
def sdpa_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None,
                   dropout_p: float = 0.0) -> tuple[Tensor, None]:
    """softmax(q k^T / sqrt(d) + mask) v with dropout p, for q (b h n d), k and v (b h m d): (b h n d), None."""
    if fused_kernel_runs(q, dropout_p):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p), None
    one_mask_row = mask is None or mask.shape[-2] == 1  # the blocked kernel takes a padding mask (b 1 1 m)
    if dropout_p < 1.0 and one_mask_row and not scores_fit_in_cache(q, k):
        return blocked_attention_with_dropout(q, k, v, mask, dropout_p), None
    # In place where autograd allows it: the (n x m) scores are the biggest tensors of the model.
    scores = q @ k.transpose(-2, -1)  # b h n m
    scores /= math.sqrt(q.shape[-1])
    if mask is not None:
        scores += mask
    probs = scores.softmax(dim=-1)
    if dropout_p == 1.0:
        return (probs * 0.0) @ v, None
    # dropout(probs) @ v with the 1 / (1 - p) moved onto the (n x d) result: the same sum, two passes fewer over
    # the (n x m) probabilities
    return (zero_dropped(probs, drop_mask(probs, dropout_p)) @ v).div_(1 - dropout_p), None
