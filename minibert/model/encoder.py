"""The Transformer encoder: a stack of identical layers, each attention then a position-wise feed-forward.

Lecture 1.1 (contextualized word embeddings); notebook notebooks/02_attention_and_encoder.ipynb.
BERT is post-LayerNorm: each sub-layer computes LayerNorm(x + sublayer(x)). Module names follow
Hugging Face's `BertLayer` (`attention`, `intermediate`, `output`) so state-dict keys are the same.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..config import BertConfig
from .attention import BertAttention, DenseAddNorm

ACTIVATION_FUNCTIONS = {
    "gelu": F.gelu,                                       # exact, with erf: BERT's own
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),  # the tanh approximation (GPT-2's)
    "relu": F.relu,
    "silu": F.silu,
}


class FeedForwardIn(nn.Module):
    """The first half of the feed-forward: widen to intermediate_size, then the non-linearity."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = ACTIVATION_FUNCTIONS[config.hidden_act]

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = FeedForwardIn(config)
        self.output = DenseAddNorm(config.intermediate_size, config)  # narrow back, add, normalise

    def forward(self, x: Tensor, mask: Tensor | None = None, output_attentions: bool = False, **options):
        x, probs = self.attention(x, mask, output_attentions, **options)
        return self.output(self.intermediate(x), residual=x), probs


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, x: Tensor, mask: Tensor | None = None, output_hidden_states: bool = False,
                output_attentions: bool = False, **options):
        """Returns the last hidden state, every hidden state (input first) and every attention map, as asked."""
        hidden_states, attentions = [x], []
        for layer in self.layer:
            x, probs = layer(x, mask, output_attentions, **options)
            hidden_states.append(x)
            attentions.append(probs)
        return (x, tuple(hidden_states) if output_hidden_states else None,
                tuple(attentions) if output_attentions else None)
