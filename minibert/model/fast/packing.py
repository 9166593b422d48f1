"""Skip the padding: the fast path's encoder computes nothing for [PAD] positions.

The fast path; lecture 1.1 (the Transformer encoder); benchmarks/README.md, "Speed". The textbook encoder
(model/encoder.py) runs every position and hides the padding with the mask; this one gives the same numbers
at the real tokens (tests/test_fast_path.py). The projections, the feed-forward, dropout and
LayerNorm treat each position on its own, so in a padded batch they would spend as much on a [PAD] as on a
word, for a result nothing reads. So the encoder packs the real tokens into rows, (b n f) -> (t f), and these
layers run on the rows. Attention, where tokens meet, gets the (b n) grid back with the padding mask, except
in inference, where it takes the rows one sequence at a time: each sequence attends over its own real tokens,
which is what the mask achieves, without the padded queries and keys. Not in training: there one call per
sequence would mean the explicit kernel's dozen small operations, or the fused kernel's backward, once per
sequence, measured slower than the padded queries they would save. The same idea as PyTorch's packed sequences for RNNs and as the nested-tensor fast path of
nn.TransformerEncoder.

What changes: the outputs at padded positions are zeros, as in that fast path (transformers computes
something there, which nothing uses). The real tokens' outputs are the same, to rounding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..attention import MultiHeadSelfAttention, additive_mask
from .sdpa import fused_kernel_runs, sdpa_attention


class RealTokens:
    """Where the real tokens of a batch are: to pack them into rows, split the rows by sequence, and unpack
    them onto the (b n) grid again.

    A batch without padding stays on the grid: `packed` is False and pack and unpack return their input.
    """

    def __init__(self, attention_mask: Tensor | None):
        self.packed = attention_mask is not None and not bool(attention_mask.all())
        if self.packed:
            self.shape = tuple(attention_mask.shape)
            real = attention_mask.bool()
            self.index = real.flatten().nonzero().squeeze(1)  # each real token's place among the b x n positions
            self.lengths = real.sum(1).tolist()               # real tokens per sequence

    def pack(self, x: Tensor) -> Tensor:
        """(b n f) -> (t f): the t real tokens, sequence after sequence."""
        # index_select rather than x[mask]: several times faster on a CPU, forward and backward
        return x.reshape(-1, x.shape[-1]).index_select(0, self.index) if self.packed else x

    def unpack(self, rows: Tensor) -> Tensor:
        """(t f) -> (b n f), zeros at the padding."""
        if not self.packed:
            return rows
        grid = rows.new_zeros(self.shape[0] * self.shape[1], rows.shape[-1]).index_copy(0, self.index, rows)
        return grid.view(*self.shape, rows.shape[-1])

    def sequences(self, rows: Tensor) -> list[Tensor]:
        """(t f) -> one (n_i f) tensor per sequence, n_i its real tokens (0 for a sequence of padding only)."""
        return rows.split(self.lengths)



def packing_applies(encoder: nn.Module, attention_mask: Tensor | None, output_attentions: bool) -> bool:
    """Whether the fast encoder below can stand in for the textbook one: the "sdpa" kernel, a padding mask
    (not a per-query one), no attention maps asked for, and self-attention modules of the textbook kind (a
    method that swaps in its own, such as prefix tuning, runs on the textbook encoder)."""
    return (not output_attentions and (attention_mask is None or attention_mask.dim() == 2)
            and all(layer.attention.self.config.attn_implementation == "sdpa"
                    and type(layer.attention.self) is MultiHeadSelfAttention for layer in encoder.layer))


def packed_encoder_forward(encoder: nn.Module, x: Tensor, attention_mask: Tensor | None,
                           output_hidden_states: bool = False) -> tuple[Tensor, tuple[Tensor, ...] | None]:
    """The encoder's layers on the real tokens of x (b n (h d)): the last hidden state (b n (h d), zeros at the
    padding) and, if asked, every hidden state. Each layer's modules run as they are (so an adapter or LoRA
    inside them still works); only self-attention is done here, by `packed_self_attention`."""
    tokens = RealTokens(attention_mask)
    mask = additive_mask(attention_mask, x.dtype) if tokens.packed else None  # no padding: no mask at all
    x = tokens.pack(x)
    hidden_states = [x]
    for layer in encoder.layer:
        context = packed_self_attention(layer.attention.self, x, tokens, mask)
        x = layer.attention.output(context, residual=x)
        x = layer.output(layer.intermediate(x), residual=x)
        hidden_states.append(x)
    return tokens.unpack(x), tuple(map(tokens.unpack, hidden_states)) if output_hidden_states else None


def packed_self_attention(attention: MultiHeadSelfAttention, x: Tensor, tokens: RealTokens,
                          mask: Tensor | None) -> Tensor:
    """`MultiHeadSelfAttention.forward` for x packed into rows (t (h d)), or on the grid (b n (h d))."""
    qkv = _query_key_value(attention, x)  # t (three h d)
    h = attention.num_heads
    dropout_p = attention.dropout_p if attention.training else 0.0
    if tokens.packed and not torch.is_grad_enabled() and fused_kernel_runs(x, dropout_p):
        # Inference: one sequence at a time, over its real tokens only: nothing to mask, no padded queries.
        contexts = []
        for one in tokens.sequences(qkv):
            q, k, v = rearrange(one, "n (three h d) -> three 1 h n d", three=3, h=h)
            context, _ = sdpa_attention(q, k, v, None, dropout_p)
            contexts.append(rearrange(context, "1 h n d -> n h d"))  # a view: the one copy is torch.cat's
        return rearrange(torch.cat(contexts), "t h d -> t (h d)")
    # Training: the whole batch on the (b n) grid, the mask hiding the padded keys.
    q, k, v = rearrange(tokens.unpack(qkv), "b n (three h d) -> three b h n d", three=3, h=h)
    context, _ = sdpa_attention(q, k, v, mask, dropout_p)
    return tokens.pack(rearrange(context, "b h n d -> b n (h d)"))


def _query_key_value(attention: MultiHeadSelfAttention, x: Tensor) -> Tensor:
    """The three projections side by side, (... (three h d)). As one matmul with a 3x wider weight when they are
    plain nn.Linear, which keeps the cores busier; the weights stay three modules with HF's names."""
    projections = (attention.query, attention.key, attention.value)
    if all(type(p) is nn.Linear for p in projections):
        return F.linear(x, torch.cat([p.weight for p in projections]), torch.cat([p.bias for p in projections]))
    return torch.cat([p(x) for p in projections], dim=-1)  # e.g. LoRA-wrapped projections
