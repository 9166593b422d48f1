"""How well a model does its pre-training tasks on held-out text: MLM accuracy, NSP accuracy, perplexity.

Lecture lectures/pretraining.md, section "Watching it learn"; notebook notebooks/03_pretraining.ipynb.
MLM accuracy is the share of selected tokens whose original the model ranks first; perplexity is
exp(mean cross-entropy) over the same tokens: the number of words the model is, on average, as unsure
between as if it chose uniformly among them. A model that knows nothing has perplexity = vocabulary size.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..model.pretraining import IGNORE_INDEX
from .data import Batch


@dataclass
class Evaluation:
    mlm_accuracy: float
    nsp_accuracy: float
    perplexity: float
    mlm_loss: float
    nsp_loss: float
    loss: float               # mlm_loss + nsp_loss, the quantity the model is trained on

    def as_dict(self, prefix: str = "eval_") -> dict[str, float]:
        return {prefix + k: v for k, v in asdict(self).items()}


def loss_sums(output, batch: Batch) -> Tensor:
    """[summed MLM cross-entropy, MLM hits, summed NSP cross-entropy, NSP hits] of one batch, from an
    output computed with masked_positions_only=True (prediction_logits: k v, one row per label)."""
    targets = batch.labels[batch.labels != IGNORE_INDEX]
    mlm_logits = output.prediction_logits.float()  # softmax in float32 even under bf16 autocast
    nsp_logits = output.seq_relationship_logits.float()
    return torch.stack([
        F.cross_entropy(mlm_logits, targets, reduction="sum"),
        (mlm_logits.argmax(-1) == targets).sum(),
        F.cross_entropy(nsp_logits, batch.next_sentence_label, reduction="sum"),
        (nsp_logits.argmax(-1) == batch.next_sentence_label).sum(),
    ])


def forward(model: nn.Module, batch: Batch):
    return model(batch.input_ids, attention_mask=batch.attention_mask, token_type_ids=batch.token_type_ids,
                 labels=batch.labels, masked_positions_only=True)


@torch.no_grad()
def evaluate(model: nn.Module, batches: list[Batch], device: torch.device | str = "cpu",
             bf16: bool = False) -> Evaluation:
    was_training = model.training
    model.eval()  # dropout off: the score of the model, not of a noisy copy of it
    device = torch.device(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    sums, targets, pairs = torch.zeros(4, dtype=torch.float64), 0, 0
    for batch in batches:
        batch = batch.to(device)
        with autocast:
            output = forward(model, batch)
        sums += loss_sums(output, batch).double().cpu()
        targets += batch.num_targets
        pairs += len(batch.next_sentence_label)
    model.train(was_training)
    mlm_loss, nsp_loss = sums[0].item() / max(targets, 1), sums[2].item() / max(pairs, 1)
    return Evaluation(mlm_accuracy=sums[1].item() / max(targets, 1), nsp_accuracy=sums[3].item() / max(pairs, 1),
                      perplexity=math.exp(min(mlm_loss, 50.0)), mlm_loss=mlm_loss, nsp_loss=nsp_loss,
                      loss=mlm_loss + nsp_loss)


@torch.no_grad()
def fill_mask(model: nn.Module, tokenizer, text: str, k: int = 5) -> list[list[tuple[str, float]]]:
    """For every [MASK] in `text`, the model's k likeliest tokens with their probabilities."""
    device = next(model.parameters()).device
    encoding = tokenizer(text, return_tensors="pt")
    if not (encoding.input_ids == tokenizer.mask_token_id).any():
        raise ValueError(f"{text!r} has no [MASK] to fill in; write [MASK] where a word should be guessed.")
    was_training = model.training
    model.eval()
    output = model(encoding.input_ids.to(device), encoding.attention_mask.to(device),
                   encoding.token_type_ids.to(device))
    model.train(was_training)
    logits = output.prediction_logits if hasattr(output, "prediction_logits") else output.logits
    masked = (encoding.input_ids[0] == tokenizer.mask_token_id).to(device)
    top = logits[0, masked].float().softmax(-1).topk(k)  # (masks, k)
    return [[(tokenizer.convert_ids_to_tokens(i), p) for i, p in zip(ids, probs)]
            for ids, probs in zip(top.indices.tolist(), top.values.tolist())]
