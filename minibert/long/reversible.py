"""Reversible layers (Reformer's other half): activations recomputed in backward instead of stored.

Lecture 1.3 (models for long sequences); notebook notebooks/04_long_sequences.ipynb. After RevNet (Gomez et
al. 2017), as Reformer uses it. A normal stack keeps every layer's input for the backward pass: memory grows
with depth. A reversible layer splits the hidden state in two halves and computes
    y1 = x1 + f(x2)        (f: the attention sub-layer)
    y2 = x2 + g(y1)        (g: the feed-forward sub-layer)
whose inputs follow from its outputs exactly:
    x2 = y2 - g(y1),   x1 = y1 - f(x2).
So only the last layer's output is stored; backward walks down the stack, recomputing each layer's input from
its output and then its gradients: activation memory of one layer, whatever the depth, for about one more
forward pass of time. Dropout inside f and g draws the same numbers when recomputed (the random state is
kept per call).
The sub-layers are pre-LayerNorm, f(x) = dense(attention(LayerNorm(x))), as in Reformer: BERT's
post-LayerNorm, LayerNorm(x + f(x)), cannot be inverted this way, so this encoder does not load BERT weights.

Shape legend: b batch, n tokens, (h d) hidden size.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import BertConfig
from ..model.attention import MultiHeadSelfAttention
from ..model.encoder import FeedForwardIn


class AttentionSublayer(nn.Module):
    """f: LayerNorm, self-attention (any kind minibert has, by config.attn_implementation), output projection."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = MultiHeadSelfAttention(config)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        context, _ = self.attention(self.LayerNorm(x), mask)
        return self.dropout(self.dense(context))


class FeedForwardSublayer(nn.Module):
    """g: LayerNorm, widen and activate, narrow back."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.intermediate = FeedForwardIn(config)
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.dropout(self.dense(self.intermediate(self.LayerNorm(x))))


class ReversibleLayer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.f, self.g = AttentionSublayer(config), FeedForwardSublayer(config)

    def forward(self, x1: Tensor, x2: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y1 = x1 + self.f(x2, mask)
        return y1, x2 + self.g(y1, mask)

    def inverse(self, y1: Tensor, y2: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x2 = y2 - self.g(y1, mask)
        return y1 - self.f(x2, mask), x2


def with_random_state(state: Tensor, module: nn.Module, x: Tensor, mask: Tensor | None) -> Tensor:
    """module(x, mask) drawing its dropout masks from the CPU random state `state`, leaving the global one as
    it was."""
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(state)
        return module(x, mask)


class ReversibleStack(torch.autograd.Function):
    """apply(x1, x2, mask, layers, *parameters) -> (y1, y2), storing only (y1, y2) for backward."""

    @staticmethod
    def forward(ctx, x1: Tensor, x2: Tensor, mask: Tensor | None, layers: nn.ModuleList, *parameters: Tensor):
        states = []  # per layer, the random state before f and before g, to redraw the same dropout masks
        with torch.no_grad():
            for layer in layers:
                f_state = torch.get_rng_state()
                x1 = x1 + layer.f(x2, mask)
                g_state = torch.get_rng_state()
                x2 = x2 + layer.g(x1, mask)
                states.append((f_state, g_state))
        ctx.layers, ctx.mask, ctx.states = layers, mask, states
        ctx.save_for_backward(x1, x2)
        return x1, x2

    @staticmethod
    def backward(ctx, dy1: Tensor, dy2: Tensor):
        y1, y2 = ctx.saved_tensors
        mask = ctx.mask
        for layer, (f_state, g_state) in zip(reversed(ctx.layers), reversed(ctx.states)):
            # through g: y2 = x2 + g(y1). Recompute g(y1) with a graph; its backward gives g's parameter
            # gradients and dy1's share from g
            with torch.enable_grad():
                y1 = y1.detach().requires_grad_()
                g_out = with_random_state(g_state, layer.g, y1, mask)
                torch.autograd.backward(g_out, dy2)
            with torch.no_grad():
                x2 = y2 - g_out           # the layer's input half, recomputed from its output
                dx1 = dy1 + y1.grad       # y1 = x1 + f(x2): x1's gradient is y1's whole gradient
            # through f: y1 = x1 + f(x2)
            with torch.enable_grad():
                x2 = x2.detach().requires_grad_()
                f_out = with_random_state(f_state, layer.f, x2, mask)
                torch.autograd.backward(f_out, dx1)
            with torch.no_grad():
                x1 = y1 - f_out
                dx2 = dy2 + x2.grad
            y1, y2, dy1, dy2 = x1, x2, dx1, dx2
        # the parameters' gradients were accumulated into .grad by the backward calls above
        return (dy1, dy2, None, None) + (None,) * len(ctx.needs_input_grad[4:])


class ReversibleEncoder(nn.Module):
    """A stack of ReversibleLayers: x -> (x, x) -> layers -> the mean of the two halves (as Reformer)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(ReversibleLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, x: Tensor, mask: Tensor | None = None, reversible: bool = True) -> Tensor:
        """x (b n (h d)), mask additive or None. reversible=False runs the same layers with ordinary autograd,
        storing every activation: the same numbers, the reference for the tests."""
        if reversible and torch.is_grad_enabled():
            y1, y2 = ReversibleStack.apply(x, x, mask, self.layer, *self.parameters())
        else:
            y1, y2 = x, x
            for layer in self.layer:
                y1, y2 = layer(y1, y2, mask)
        return (y1 + y2) / 2
