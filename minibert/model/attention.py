"""Multi-head self-attention: every token looks at every other token and takes a weighted mix of them.

Lecture 1.1 (contextualized word embeddings); notebook notebooks/02_attention_and_encoder.ipynb.
Matches `BertSelfAttention` / `BertSelfOutput` of Hugging Face's modeling_bert.py: the attribute names below
(`self.query`, `output.dense`, `output.LayerNorm` ...) are its state-dict names, so real weights load as is.

Read `eager_attention` first: it is the formula of the lecture, softmax(q k^T / sqrt(d) + mask) v, line by line.
The projections around it (`MultiHeadSelfAttention`) pick the kernel by name from `ATTENTION_FUNCTIONS`, as
transformers' `config._attn_implementation` does:
- "eager": `eager_attention` below, the textbook path. The notebooks and the exercises run it.
- "sdpa": the fast path (model/fast/), the default: PyTorch's fused kernel, blocked attention for CPU training,
  cheaper dropout masks, and an encoder that skips the padding. Tests prove it equal to "eager".

How to add a kind of attention (a sliding window, hashing, a causal or sequence-to-sequence mask ...):
write a kernel with the signature of `eager_attention`, decorate it with `@register_attention("name")` and build
the model with `attn_implementation="name"`. Extra keyword arguments given to the model's forward reach the
kernel as `**options`. A kind that needs weights of its own (Longformer's global projections, prefix keys
and values, LoRA) replaces `layer.attention.self` of a built model with its own module instead; nothing in
the encoder changes either way. A mask is additive (see `additive_mask`), so a causal or sequence-to-sequence
mask needs no kernel of its own: pass it as a (b n m) attention_mask.

Shape legend: b batch, n query tokens, m key tokens, h heads, d head size, (h d) = hidden size.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..config import BertConfig

# kernel(q, k, v, mask, dropout_p, **options) -> (context b h n d, probabilities b h n m or None)
AttentionKernel = Callable[..., tuple[Tensor, Tensor | None]]
ATTENTION_FUNCTIONS: dict[str, AttentionKernel] = {}


def register_attention(name: str) -> Callable[[AttentionKernel], AttentionKernel]:
    """Decorator: make a kernel selectable as `BertConfig(attn_implementation=name)`."""
    def register(kernel: AttentionKernel) -> AttentionKernel:
        ATTENTION_FUNCTIONS[name] = kernel
        return kernel
    return register


@register_attention("eager")
def eager_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None,
                    dropout_p: float = 0.0) -> tuple[Tensor, Tensor]:
    """softmax(q k^T / sqrt(d) + mask) v, for q (b h n d), k and v (b h m d).

    `mask` is additive and broadcasts to (b h n m): 0 where a query may look, a huge negative number where it
    may not. Returns the new vectors (b h n d) and the attention probabilities (b h n m).
    """
    ### BEGIN SOLUTION attention_kernel
    scores = q @ k.transpose(-2, -1)              # b h n m: how well each query matches each key
    scores = scores / math.sqrt(q.shape[-1])      # keeps the scores' spread ~1 whatever d is, so softmax stays soft
    if mask is not None:
        scores = scores + mask                    # hidden keys get ~-inf, so softmax gives them weight ~0
    probs = scores.softmax(dim=-1)                # each query's weights over the keys sum to 1
    context = F.dropout(probs, dropout_p) @ v     # b h n d: the weighted mix of the values
    return context, probs
    ### END SOLUTION


def additive_mask(attention_mask: Tensor, dtype: torch.dtype) -> Tensor:
    """1 = may attend, 0 = may not  ->  0 / the most negative float, to add to the attention scores.

    (b m), one flag per key (padding), gives (b 1 1 m): the same for every head and every query.
    (b n m), one row per query (a causal or sequence-to-sequence mask), gives (b 1 n m).
    Built once per batch and shared by every layer.
    """
    if attention_mask.dim() == 2:
        keep = attention_mask[:, None, None, :]
    elif attention_mask.dim() == 3:
        keep = attention_mask[:, None, :, :]
    else:
        raise ValueError(f"attention_mask must be (batch, keys) or (batch, queries, keys); got shape "
                         f"{tuple(attention_mask.shape)}.")
    return (1.0 - keep.to(dtype)) * torch.finfo(dtype).min


class MultiHeadSelfAttention(nn.Module):
    """The projections around the kernel: x -> queries, keys, values per head -> kernel -> concatenated heads."""

    def __init__(self, config: BertConfig):
        super().__init__()
        if config.attn_implementation not in ATTENTION_FUNCTIONS:
            raise ValueError(f"attn_implementation={config.attn_implementation!r} is not a known attention; "
                             f"choose one of {', '.join(sorted(ATTENTION_FUNCTIONS))}.")
        self.config = config
        self.num_heads = config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, x: Tensor, mask: Tensor | None = None, output_attentions: bool = False,
                **options) -> tuple[Tensor, Tensor | None]:
        """x (b n (h d)), mask additive (see `additive_mask`) -> (b n (h d)), and the probabilities if asked."""
        q = rearrange(self.query(x), "b n (h d) -> b h n d", h=self.num_heads)
        k = rearrange(self.key(x), "b n (h d) -> b h n d", h=self.num_heads)
        v = rearrange(self.value(x), "b n (h d) -> b h n d", h=self.num_heads)
        # Attention maps exist only on the textbook path (fast kernels never build them), as in transformers.
        kernel = ATTENTION_FUNCTIONS["eager" if output_attentions else self.config.attn_implementation]
        context, probs = kernel(q, k, v, mask, self.dropout_p if self.training else 0.0, **options)
        return rearrange(context, "b h n d -> b n (h d)"), probs


class DenseAddNorm(nn.Module):
    """LayerNorm(residual + dropout(dense(x))): the 'Add & Norm' after attention and after the feed-forward."""

    def __init__(self, in_features: int, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(residual + self.dropout(self.dense(x)))


class BertAttention(nn.Module):
    """Self-attention, then the output projection with its residual connection and LayerNorm."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = MultiHeadSelfAttention(config)  # the name `self` gives HF's key `attention.self.query`
        self.output = DenseAddNorm(config.hidden_size, config)

    def forward(self, x: Tensor, mask: Tensor | None = None, output_attentions: bool = False,
                **options) -> tuple[Tensor, Tensor | None]:
        context, probs = self.self(x, mask, output_attentions, **options)
        return self.output(context, residual=x), probs
