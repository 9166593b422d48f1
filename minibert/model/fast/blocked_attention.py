"""Attention with dropout for CPU training, a few heads at a time so the (n x m) blocks stay in the cache.

Lecture 1.1 (the Transformer encoder); README, "Speed". The same numbers as the textbook kernel
(`eager_attention` in model/attention.py), written out forward and backward by hand.

Why: PyTorch's fused attention kernel has no dropout on a CPU, so training there materialises the attention
probabilities, b x h x n x m floats per layer (50 MB at length 512, batch 4, 12 heads: more than the
last-level cache). Scaling, masking, softmax, dropout and their backward passes each stream that tensor
through main memory, and at length 512 those passes cost more than the matmuls. Here every step of the
computation runs on one block of heads while it is still in the cache, and each block's probabilities
(before and after dropout) and dropout mask are kept as they are for the backward pass. FlashAttention applies the same idea to a GPU's on-chip
memory, one level further: it even recomputes the probabilities instead of storing them.

Shape legend: b batch, h heads, c heads in one block (of any examples), n query tokens, m key tokens, d head size.
Forward, for one block, with D the dropout mask and p its rate:
    S = q k^T / sqrt(d) + mask,   P = softmax(S),   out = (P with D zeroed) v / (1 - p)
Backward, from dout:
    dv = (P with D zeroed)^T dout / (1 - p),   dP = (dout v^T with D zeroed) / (1 - p)
    dS = P * (dP - rowsum(dP * P))          (the softmax's Jacobian, applied row by row)
    dq = dS k / sqrt(d),   dk = dS^T q / sqrt(d)
Two rewritings save passes over the (n x m) blocks. rowsum(dP * P) = rowsum(dout * out), a dot product of
(n x d) rows (as in FlashAttention), since out = (P with D zeroed) v / (1 - p); and P * dP =
(dout v^T / (1 - p)) * (P with D zeroed), so the dropout mask itself is not needed in backward:
    dS = (dout v^T / (1 - p)) * (P with D zeroed) - P * rowsum(dout * out)
"""
from __future__ import annotations

import math

import torch
from einops import rearrange, repeat
from torch import Tensor

from .dropout import drop_mask, zero_dropped

# About the last-level cache of a laptop or server core pair. When a layer's scores fit in it, the plain
# formula is as fast; otherwise they go in blocks of half of it (the tensors made from a block need the rest).
CACHE_BYTES = 16 * 2**20


def scores_fit_in_cache(q: Tensor, k: Tensor) -> bool:
    """Whether the (b h n m) attention scores for q (b h n d) and k (b h m d) fit in CACHE_BYTES."""
    return q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] * q.element_size() <= CACHE_BYTES


def blocks(heads: int, n: int, m: int, element_size: int = 4) -> list[slice]:
    """Slices of the `heads` (b x h, all examples' heads in a row), each block's scores at most half of
    CACHE_BYTES (one head at least)."""
    per_block = max(1, CACHE_BYTES // 2 // (n * m * element_size))
    return [slice(start, min(start + per_block, heads)) for start in range(0, heads, per_block)]


class BlockedAttentionWithDropout(torch.autograd.Function):
    """apply(q, k, v, mask, p): q (b h n d), k and v (b h m d), mask (b 1 1 m) additive or None -> (b h n d)."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, p: float):
        b, h, n, d = q.shape
        m = k.shape[2]
        # Every example's heads in one row of (b h) blocks; reshape copies the strided views of the fused
        # projection once (n x d each, small), and bmm runs much faster on contiguous blocks.
        q, k, v = (rearrange(x, "b h n d -> (b h) n d") for x in (q, k, v))
        if mask is not None:
            mask = repeat(mask, "b 1 1 m -> (b h) 1 m", h=h)
        out = q.new_empty(b * h, n, d)
        kept_for_backward = []  # per block: probabilities, and probabilities after dropout
        for block in blocks(b * h, n, m, q.element_size()):
            scores = q[block] @ k[block].transpose(1, 2)  # c n m
            scores /= math.sqrt(d)  # as eager_attention does, so both give the same numbers
            if mask is not None:
                scores += mask[block]  # padded keys get a huge negative score
            weights = scores.softmax(dim=-1)
            drop = drop_mask(weights, p)
            dropped_weights = zero_dropped(weights, drop)
            torch.bmm(dropped_weights, v[block], out=out[block])
            kept_for_backward += [weights, dropped_weights]
        out /= 1 - p  # dropout's rescaling, on the (n x d) result instead of the (n x m) probabilities
        # the blocks as they are (no copy into one tensor), and out for the softmax's row sums in backward
        ctx.save_for_backward(q, k, v, out, *kept_for_backward)
        ctx.p, ctx.shape = p, (b, h, n, m)
        return rearrange(out, "(b h) n d -> b h n d", b=b)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        q, k, v, out, *kept = ctx.saved_tensors
        b, h, n, m = ctx.shape
        grad_out = rearrange(grad_out, "b h n d -> (b h) n d")
        row_terms = (grad_out * out).sum(-1, keepdim=True)  # rowsum(dP * P), from (n x d) rows: (b h) n 1
        grad_out = grad_out / (1 - ctx.p)  # n x d: the cheapest place for dropout's 1 / (1 - p)
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        for k_, block in enumerate(blocks(b * h, n, m, q.element_size())):
            weights, dropped_weights = kept[2 * k_:2 * k_ + 2]
            dout = grad_out[block]
            torch.bmm(dropped_weights.transpose(1, 2), dout, out=dv[block])
            grad_scores = (dout @ v[block].transpose(1, 2)).mul_(dropped_weights)  # P * dP: c n m
            grad_scores.addcmul_(weights, row_terms[block], value=-1)
            torch.bmm(grad_scores, k[block], out=dq[block])
            torch.bmm(grad_scores.transpose(1, 2), q[block], out=dk[block])
        dq /= math.sqrt(q.shape[-1])
        dk /= math.sqrt(q.shape[-1])
        split = "(b h) n d -> b h n d"
        return rearrange(dq, split, b=b), rearrange(dk, split, b=b), rearrange(dv, split, b=b), None, None


def blocked_attention_with_dropout(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, p: float) -> Tensor:
    """softmax(q k^T / sqrt(d) + mask) with dropout p, times v: (b h n d). For 0 < p < 1."""
    if mask is not None and mask.requires_grad:
        raise ValueError("the attention mask is a constant here; detach it first.")
    return BlockedAttentionWithDropout.apply(q, k, v, mask, p)
