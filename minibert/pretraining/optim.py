"""BERT's optimiser: AdamW with decoupled weight decay, a linear warm-up and a linear decay to zero.

Lecture lectures/pretraining.md, section "The training loop"; notebook notebooks/03_pretraining.ipynb.
Weight decay pulls weights towards zero: lr x wd x w is taken off each step, apart from the gradient step
(decoupled, Loshchilov & Hutter). Biases and LayerNorm scales are left alone, as in BERT: a bias does not
make a layer more complex, and shrinking a LayerNorm gain towards zero would just silence the layer.
"""
from __future__ import annotations

from torch import nn
from torch.optim import AdamW
from torch.optim.lr_scheduler import LambdaLR


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: matrices and embeddings decay, biases and LayerNorm parameters do not."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():  # a tied weight appears once, under its first name
        if not parameter.requires_grad:
            continue
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.01, betas=(0.9, 0.999),
                   eps: float = 1e-6) -> AdamW:
    # eps 1e-6 as in BERT: with 1e-8, a gradient that is zero up to rounding would still move its weight.
    # fused: one kernel updates every parameter, instead of a dozen small operations per tensor
    # (6% of a training step of the mini preset on a CPU); the same update up to rounding.
    device = next(model.parameters()).device.type
    return AdamW(parameter_groups(model, weight_decay), lr=lr, betas=betas, eps=eps,
                 fused=True if device in ("cpu", "cuda") else None)


class LinearWarmupDecay:
    """lr factor: rises linearly from 0 to 1 over `warmup_steps`, then falls linearly to 0 at `total_steps`.

    A class rather than a lambda, so that the scheduler's state_dict (saved in checkpoints) holds its numbers.
    """

    def __init__(self, warmup_steps: int, total_steps: int):
        self.warmup_steps, self.total_steps = warmup_steps, total_steps

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps  # step 0 already gets a small learning rate, not zero
        return max(0.0, (self.total_steps - step) / max(1, self.total_steps - self.warmup_steps))


def make_scheduler(optimizer: AdamW, warmup_steps: int, total_steps: int) -> LambdaLR:
    return LambdaLR(optimizer, LinearWarmupDecay(warmup_steps, total_steps))
