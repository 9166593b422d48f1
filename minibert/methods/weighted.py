"""Weighted features: a learned mix of every layer's output instead of the last one (ELMo's scalar mix).

Lecture 2.3 (how to fine-tune: "weighted features": each layer of BERT holds different information, so let the
task choose); notebook notebooks/06_ways_to_finetune.ipynb.
    features = gamma * sum_l softmax(w)_l h_l,   l = 0 (the embeddings) .. L (the last layer)
The encoder stays frozen; only w (L + 1 numbers), gamma and the task head train. softmax keeps the layer weights
positive and summing to one, so they read as "how much of each layer"; the notebook plots them per task.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class ScalarMix(nn.Module):
    def __init__(self, num_layers: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(num_layers))  # equal shares to start with
        self.gamma = nn.Parameter(torch.ones(1))

    def layer_weights(self) -> Tensor:
        return self.weights.softmax(dim=0)

    def forward(self, hidden_states: tuple[Tensor, ...]) -> Tensor:
        stacked = torch.stack(hidden_states)  # (L+1) b n (h d)
        return self.gamma * torch.einsum("l,lbnh->bnh", self.layer_weights(), stacked)


def add_scalar_mix(bert: nn.Module) -> ScalarMix:
    """Make a BertModel return the mix as its last_hidden_state (and pool the mix's [CLS]).

    Done with forward hooks, so the model code and every head on top stay as they are: the one before forward
    asks for every hidden state, the one after replaces the output."""
    bert.scalar_mix = ScalarMix(bert.config.num_hidden_layers + 1)

    def ask_for_every_layer(module, args, kwargs):
        return args, {**kwargs, "output_hidden_states": True}

    def mix(module, args, kwargs, output):
        output.last_hidden_state = module.scalar_mix(output.hidden_states)
        if module.pooler is not None:
            output.pooler_output = module.pooler(output.last_hidden_state)
        return output

    bert.register_forward_pre_hook(ask_for_every_layer, with_kwargs=True)
    bert.register_forward_hook(mix, with_kwargs=True)
    return bert.scalar_mix
