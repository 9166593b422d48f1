"""LoRA (Hu et al. 2021): a frozen weight W plus a trainable low-rank update, W x + (alpha / r) B A x.

Lecture 2.3 (how to fine-tune, beyond the lecture: parameter-efficient methods); notebook
notebooks/07_ways_to_finetune.ipynb. The module and parameter names are PEFT's (`base_layer`, `lora_A`, `lora_B`),
so an adapter moves between minibert and `peft` + `transformers` (methods/peft_format.py; tests/test_methods_peft.py).

A starts random and B at zero, so at the start the model is exactly the pre-trained one; only A and B train:
r x (in + out) numbers per adapted matrix instead of in x out. After training, B A can be added into W
(`merge`): the model is then as fast as the original, and a task costs nothing at inference.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class LoRALinear(nn.Module):
    """base_layer(x) + dropout-free scale * lora_B(lora_A(x)); base_layer frozen."""

    def __init__(self, base_layer: nn.Linear, r: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if r < 1:
            raise ValueError(f"LoRA rank r must be at least 1; got {r}.")
        self.base_layer = base_layer.requires_grad_(False)
        self.lora_A = nn.Linear(base_layer.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base_layer.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))  # as nn.Linear and PEFT initialise
        nn.init.zeros_(self.lora_B.weight)                            # B A = 0: the start is the base model
        self.lora_dropout = nn.Dropout(dropout)
        self.scaling = alpha / r
        self.merged_from: Tensor | None = None  # the base weight before `merge`, so `unmerge` restores it exactly

    @property
    def weight(self) -> Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> Tensor | None:
        return self.base_layer.bias

    def delta_weight(self) -> Tensor:
        ### BEGIN SOLUTION lora_layer
        return self.lora_B.weight @ self.lora_A.weight * self.scaling  # out x in, rank r
        ### END SOLUTION

    def forward(self, x: Tensor) -> Tensor:
        ### BEGIN SOLUTION lora_layer
        out = self.base_layer(x)
        if self.merged_from is not None:
            return out  # B A is inside the weight already
        return out + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling
        ### END SOLUTION

    @torch.no_grad()
    def merge(self) -> None:
        if self.merged_from is None:
            self.merged_from = self.base_layer.weight.detach().clone()
            self.base_layer.weight += self.delta_weight()

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged_from is not None:
            self.base_layer.weight.copy_(self.merged_from)
            self.merged_from = None


def add_lora(encoder: nn.Module, r: int = 8, alpha: float = 16, dropout: float = 0.0,
             target_modules: tuple[str, ...] = ("query", "value")) -> list[str]:
    """Wrap every nn.Linear of `encoder` whose own name is in target_modules; returns the wrapped names."""
    wrapped = []
    for name, module in list(encoder.named_modules()):
        for child_name, child in list(module.named_children()):
            if child_name in target_modules and type(child) is nn.Linear:
                setattr(module, child_name, LoRALinear(child, r, alpha, dropout))
                wrapped.append(f"{name}.{child_name}" if name else child_name)
    if not wrapped:
        raise ValueError(f"no nn.Linear named {', '.join(target_modules)} found; BERT's are query, key, value, "
                         "dense.")
    return wrapped
