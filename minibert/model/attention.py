"""Multi-head self-attention: every token looks at every other token and takes a weighted mix of them.

Lecture 1.1 (contextualized word embeddings); notebook notebooks/02_attention_and_encoder.ipynb.
Matches `BertSelfAttention` / `BertSelfOutput` of Hugging Face's modeling_bert.py: the attribute names below
(`self.query`, `output.dense`, `output.LayerNorm` ...) are its state-dict names, so real weights load as is.

Shape legend: b batch, n query tokens, m key tokens, h heads, d head size, (h d) = hidden size.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..config import BertConfig
from .blocked_attention import blocked_attention_with_dropout, scores_fit_in_cache
from .dropout import Dropout, dropout, drop_mask, zero_dropped
from .padding import ALL_REAL, RealTokens


def attention_kernel(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float,
                     return_probs: bool) -> tuple[Tensor, Tensor | None]:
    """softmax(q k^T / sqrt(d) + mask) v, for q (b h n d), k and v (b h m d), mask (b 1 1 m) additive.

    The fused kernel computes the same thing without materialising the (n x m) probabilities, so it runs
    whenever nobody asked to see them. On a CPU it has no dropout: there, in training, the lines below run as
    written, or, when the probabilities would not fit in the cache, a few heads at a time
    (model/blocked_attention.py).
    """
    if fused_kernel_runs(q.device, dropout_p, return_probs):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p), None
    if not return_probs and dropout_p < 1.0 and not scores_fit_in_cache(q, k):
        return blocked_attention_with_dropout(q, k, v, mask, dropout_p), None
    # In place where autograd allows it: the (n x m) scores are the biggest tensors of the model.
    scores = q @ k.transpose(-2, -1)  # b h n m
    scores /= math.sqrt(q.shape[-1])
    if mask is not None:
        scores += mask  # padded keys get a huge negative score, so softmax gives them ~0 weight
    probs = scores.softmax(dim=-1)
    if dropout_p == 0.0 or dropout_p == 1.0 or q.device.type != "cpu":
        return dropout(probs, dropout_p) @ v, probs  # b h n d
    # dropout(probs) @ v with the 1 / (1 - p) moved onto the (n x d) result: the same sum, but two passes
    # fewer over the (n x m) probabilities, the biggest tensors of the model (see model/dropout.py)
    return (zero_dropped(probs, drop_mask(probs, dropout_p)) @ v).div_(1 - dropout_p), probs


def fused_kernel_runs(device: torch.device, dropout_p: float, return_probs: bool) -> bool:
    """Whether `attention_kernel` hands its work to PyTorch's fused kernel."""
    return not return_probs and (dropout_p == 0.0 or device.type != "cpu")


class MultiHeadSelfAttention(nn.Module):
    """The projections around the kernel: x -> queries, keys, values per head -> kernel -> concatenated heads."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, x: Tensor, mask: Tensor | None = None, return_probs: bool = False,
                tokens: RealTokens = ALL_REAL):
        """x is (b n (h d)), or the real tokens of a padded batch packed into rows, (t (h d)): `tokens` says which
        (model/padding.py). The output has the shape of x."""
        # The three projections as one matmul with a 3x wider weight, which keeps the cores busier. The
        # weights stay three nn.Linear, so checkpoints keep the names query, key and value.
        weight = torch.cat([self.query.weight, self.key.weight, self.value.weight])  # (3 h d) x (h d)
        bias = torch.cat([self.query.bias, self.key.bias, self.value.bias])
        qkv = F.linear(x, weight, bias)
        dropout_p = self.dropout_p if self.training else 0.0
        if tokens.packed and not torch.is_grad_enabled() and fused_kernel_runs(x.device, dropout_p, return_probs):
            # Inference: one sequence at a time, over its real tokens only, one fused call each: nothing to
            # mask, no padded queries to compute.
            contexts = []
            for one in tokens.sequences(qkv):
                q, k, v = rearrange(one, "n (three h d) -> three 1 h n d", three=3, h=self.num_heads)
                context, _ = attention_kernel(q, k, v, None, dropout_p, return_probs=False)
                contexts.append(rearrange(context, "1 h n d -> n h d"))  # a view: the one copy is torch.cat's
            return rearrange(torch.cat(contexts), "t h d -> t (h d)"), None
        # The whole batch at once on the (b n) grid, the mask hiding padded keys: for the attention maps when
        # they are asked for, and in training, where one call per sequence would mean the explicit kernel's
        # dozen small operations, or the fused kernel's backward, once per sequence; measured slower than the
        # padded queries they would save (README, "Speed").
        q, k, v = rearrange(tokens.unpack(qkv), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        context, probs = attention_kernel(q, k, v, mask, dropout_p, return_probs)
        return tokens.pack(rearrange(context, "b h n d -> b n (h d)")), probs


class DenseAddNorm(nn.Module):
    """LayerNorm(residual + dropout(dense(x))): the 'Add & Norm' after attention and after the feed-forward."""

    def __init__(self, in_features: int, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(residual + self.dropout(self.dense(x)))


class BertAttention(nn.Module):
    """Self-attention, then the output projection with its residual connection and LayerNorm."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = MultiHeadSelfAttention(config)  # the name `self` gives HF's key `attention.self.query`
        self.output = DenseAddNorm(config.hidden_size, config)

    def forward(self, x: Tensor, mask: Tensor | None = None, return_probs: bool = False,
                tokens: RealTokens = ALL_REAL):
        context, probs = self.self(x, mask, return_probs, tokens)
        return self.output(context, residual=x), probs
