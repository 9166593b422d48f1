"""Distillation (DistilBERT, Sanh et al. 2019; TinyBERT, Jiao et al. 2020): the student, and what it is trained on.

Lecture 1.2 (making BERT smaller: network compression); notebook notebooks/05_smaller.ipynb. The losses only:
the loop that trains a student with them is the fine-tuning loop's (a fine-tuned MiniLM is the teacher).

- `student_from_teacher`: a shallower copy of the teacher, initialised from some of its layers (DistilBERT: one
  layer out of two).
- `distillation_loss`: the teacher's temperature-softened outputs and the hard labels,
      L = alpha T^2 KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - alpha) CE(y, z_s)  [+ beta (1 - cos(h_s, h_t))].
  A higher T lets the small probabilities ("slightly negative") count; the soft term's gradient shrinks as
  1 / T^2, which the factor T^2 gives back, so alpha means the same at any T.
- TinyBERT's losses inside the network: `hidden_state_loss` (MSE through a learned projection, so a narrower
  student can match a wider teacher) and `attention_loss` (MSE between attention maps); `layer_map` says which
  teacher layer each student layer learns from.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def student_from_teacher(teacher: nn.Module, layers: list[int] | None = None) -> nn.Module:
    """A copy of `teacher` (a BertModel, or a task model holding one) with only the encoder layers `layers`, in
    that order; embeddings, pooler and heads copied as they are. Default: every other layer, 0, 2, 4, ..."""
    total = teacher.config.num_hidden_layers
    layers = list(range(0, total, 2)) if layers is None else list(layers)
    if not layers or any(not 0 <= i < total for i in layers):
        raise ValueError(f"layers must be a non-empty list of teacher layers in [0, {total}); got {layers}.")
    student = copy.deepcopy(teacher)  # the copy's modules share one copied config, as the teacher's share one
    student.config.num_hidden_layers = len(layers)
    for module in student.modules():  # the encoder, wherever it sits (`encoder` or `bert.encoder`)
        if hasattr(module, "layer") and isinstance(module.layer, nn.ModuleList):
            module.layer = nn.ModuleList(module.layer[i] for i in layers)
    return student


@dataclass
class DistillationLoss:
    loss: Tensor                        # what the optimiser minimises: the weighted sum of the parts below
    soft: Tensor                        # T^2 KL(teacher || student), softened by T
    hard: Tensor                        # cross-entropy with the labels
    cosine: Tensor | None = None        # 1 - cos(student hidden state, teacher's), mean over the real tokens


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, temperature: float = 2.0,
                      alpha: float = 0.5, student_hidden: Tensor | None = None, teacher_hidden: Tensor | None = None,
                      attention_mask: Tensor | None = None, beta: float = 0.0) -> DistillationLoss:
    """DistilBERT's objective for a task: logits (b c), labels (b); hidden states (b n h) for the cosine term."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive; got {temperature}.")
    teacher_probs = F.softmax(teacher_logits.detach() / temperature, dim=-1)
    student_log_probs = F.log_softmax(student_logits / temperature, dim=-1)
    # KL(P_t || P_s) = sum P_t (log P_t - log P_s), averaged over the batch
    soft = F.kl_div(student_log_probs, teacher_probs, reduction="batchmean") * temperature ** 2
    hard = F.cross_entropy(student_logits, labels)
    loss = alpha * soft + (1 - alpha) * hard
    cosine = None
    if beta:
        if student_hidden is None or teacher_hidden is None:
            raise ValueError("beta > 0 adds the cosine loss on hidden states: pass student_hidden and teacher_hidden.")
        real = _real_tokens(student_hidden, attention_mask)
        cosine = (1 - F.cosine_similarity(student_hidden[real], teacher_hidden.detach()[real], dim=-1)).mean()
        loss = loss + beta * cosine
    return DistillationLoss(loss, soft, hard, cosine)


def _real_tokens(hidden: Tensor, attention_mask: Tensor | None) -> Tensor:
    return attention_mask.bool() if attention_mask is not None else hidden.new_ones(hidden.shape[:2], dtype=torch.bool)


def layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """TinyBERT's uniform mapping: student layer m (1-based) learns from teacher layer m * L_t / L_s; as indices
    into `hidden_states` (0 = the embeddings), so 3 student layers of a 6-layer teacher read 2, 4, 6."""
    if teacher_layers % student_layers:
        raise ValueError(f"a uniform map needs teacher layers ({teacher_layers}) divisible by student layers "
                         f"({student_layers}); pass your own list of teacher layers instead.")
    step = teacher_layers // student_layers
    return [m * step for m in range(1, student_layers + 1)]


def hidden_state_loss(student_hidden: Tensor, teacher_hidden: Tensor, projection: nn.Linear | None = None,
                      attention_mask: Tensor | None = None) -> Tensor:
    """MSE(H_s W_h, H_t) over the real tokens; `projection` (student width -> teacher width) learns W_h."""
    projected = projection(student_hidden) if projection is not None else student_hidden
    if projected.shape != teacher_hidden.shape:
        raise ValueError(f"student states {tuple(projected.shape)} do not match the teacher's "
                         f"{tuple(teacher_hidden.shape)}: a narrower student needs projection=nn.Linear("
                         f"{student_hidden.shape[-1]}, {teacher_hidden.shape[-1]}).")
    real = _real_tokens(student_hidden, attention_mask)
    return F.mse_loss(projected[real], teacher_hidden.detach()[real])


def attention_loss(student_attention: Tensor, teacher_attention: Tensor, attention_mask: Tensor | None = None
                   ) -> Tensor:
    """MSE between attention maps (b h n n), at the real queries and keys, averaged over heads.
    TinyBERT compares the scores before the softmax; minibert's models return the probabilities, compared here
    (the padding gets zero probability in both, so it would add only zeros)."""
    if student_attention.shape != teacher_attention.shape:
        raise ValueError(f"attention maps must have one shape (same heads and tokens): student "
                         f"{tuple(student_attention.shape)}, teacher {tuple(teacher_attention.shape)}.")
    if attention_mask is None:
        return F.mse_loss(student_attention, teacher_attention.detach())
    real = attention_mask.bool()
    pairs = (real[:, None, :, None] & real[:, None, None, :]).expand_as(student_attention)  # b h n n
    return F.mse_loss(student_attention[pairs], teacher_attention.detach()[pairs])
