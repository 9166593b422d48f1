"""Is the model using its context yet? Two yardsticks for the MLM plateau, and one for NSP.

Lecture lectures/pretraining.md, section "The plateau, and why short examples end it"; notebook
notebooks/03_pretraining.ipynb.
- `neighbour_attention`: the attention each head pays to the token just before and just after, beside the
  1/n that uniform attention would give. A BERT on the plateau looks at every position alike.
- `neighbour_counting_accuracy`: the MLM accuracy of no network at all, only counts of which token stands
  between which two neighbours in the training text. Reaching it means the model uses at least the
  neighbouring tokens, which is what getting off the plateau takes.
- `shared_words_nsp_accuracy`: the NSP accuracy of no network either, only how many (rare) words the two
  segments share, with a cut-off fitted on the training pairs. A random segment from another article is
  mostly about something else, so this alone gets far: how much of NSP is spotting a change of topic.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..model.pretraining import IGNORE_INDEX
from .data import Batch
from .pairs import IS_NEXT, SegmentPair


@dataclass
class NeighbourAttention:
    previous: Tensor  # layers x heads: mean attention from a token to the one before it
    next: Tensor      # layers x heads: ... to the one after it
    uniform: float    # what either would be if every token attended to all tokens of its example alike

    def summary(self) -> str:
        best = torch.maximum(self.previous, self.next).max(dim=1).values  # per layer, the most local head
        return ("most local head per layer (attention to a neighbour): "
                + ", ".join(f"{w:.2f}" for w in best.tolist()) + f"; uniform attention gives {self.uniform:.3f}")


def neighbour_attention_of_maps(attentions: tuple[Tensor, ...], attention_mask: Tensor) -> NeighbourAttention:
    """From each layer's (b h n n) attention probabilities and the (b n) padding mask of the batch."""
    real = attention_mask.bool()
    pairs = real[:, 1:] & real[:, :-1]  # b (n-1): query i+1 and key i are both real tokens
    count = pairs.sum().clamp_min(1)
    # diagonal(-1)[..., i] is row i+1, column i: a token's weight on its left neighbour; diagonal(1) the right one
    previous = torch.stack([(a.diagonal(-1, -2, -1) * pairs[:, None]).sum((0, 2)) / count for a in attentions])
    next_ = torch.stack([(a.diagonal(1, -2, -1) * pairs[:, None]).sum((0, 2)) / count for a in attentions])
    lengths = real.sum(1).float()
    uniform = ((lengths - 1) / lengths).sum() / (lengths - 1).sum().clamp_min(1)  # 1/length, per query counted
    return NeighbourAttention(previous.float().cpu(), next_.float().cpu(), float(uniform))


@torch.no_grad()
def neighbour_attention(model: nn.Module, batches: list[Batch]) -> NeighbourAttention:
    """Averaged over the real tokens of `batches` (a BertModel or a model with `.bert`)."""
    encoder = getattr(model, "bert", model)
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    previous, next_, uniform, weights = 0, 0, 0.0, 0
    for batch in batches:
        batch = batch.to(device)
        out = encoder(batch.input_ids, batch.attention_mask, batch.token_type_ids, output_attentions=True)
        part = neighbour_attention_of_maps(out.attentions, batch.attention_mask)
        weight = int((batch.attention_mask[:, 1:] * batch.attention_mask[:, :-1]).sum())
        previous, next_ = previous + part.previous * weight, next_ + part.next * weight
        uniform, weights = uniform + part.uniform * weight, weights + weight
    encoder.train(was_training)
    weights = max(weights, 1)
    return NeighbourAttention(previous / weights, next_ / weights, uniform / weights)


def _most_frequent_middle(keys: Tensor, middles: Tensor, vocab: int) -> dict[int, int]:
    """For every key, the middle token seen most often with it (the smaller id on a tie)."""
    if not len(keys):
        return {}
    codes, counts = torch.unique(keys * vocab + middles, return_counts=True)
    order = torch.argsort(counts, descending=True, stable=True)
    order = order[torch.argsort(codes[order] // vocab, stable=True)]  # grouped by key, most frequent first
    key, middle = codes[order] // vocab, codes[order] % vocab
    first = torch.ones_like(key, dtype=torch.bool)
    first[1:] = key[1:] != key[:-1]
    return dict(zip(key[first].tolist(), middle[first].tolist()))


def neighbour_counting_accuracy(documents: list[list[list[int]]], batches: list[Batch], mask_token_id: int) -> float:
    """MLM accuracy on `batches` of guessing each selected token from its neighbours, with counts from the
    training `documents` (PretrainingData.documents): the most frequent token between this left and right
    neighbour; if that pair was never seen or one neighbour is [MASK], the most frequent one after the left
    (or before the right) neighbour; else the most frequent token of all."""
    text = torch.tensor([t for document in documents for t in (token for s in document for token in s)])
    vocab = int(max(text.max().item(), max(int(b.input_ids.max()) for b in batches)) + 1)
    left, middle, right = text[:-2], text[1:-1], text[2:]
    both = _most_frequent_middle(left * vocab + right, middle, vocab)
    after = _most_frequent_middle(text[:-1], text[1:], vocab)
    before = _most_frequent_middle(text[1:], text[:-1], vocab)
    most_frequent = int(torch.bincount(text).argmax())
    hits = total = 0
    for batch in batches:
        ids, labels, real = batch.input_ids.tolist(), batch.labels.tolist(), batch.attention_mask.tolist()
        for row in range(len(ids)):
            for i, label in enumerate(labels[row]):
                if label == IGNORE_INDEX:
                    continue
                l_ = ids[row][i - 1] if i > 0 else None
                r = ids[row][i + 1] if i + 1 < len(ids[row]) and real[row][i + 1] else None
                l_, r = (None if t == mask_token_id else t for t in (l_, r))
                guess = None
                if l_ is not None and r is not None:
                    guess = both.get(l_ * vocab + r)
                if guess is None and l_ is not None:
                    guess = after.get(l_)
                if guess is None and r is not None:
                    guess = before.get(r)
                hits += (most_frequent if guess is None else guess) == label
                total += 1
    return hits / max(total, 1)


def shared_words_nsp_accuracy(train: list[SegmentPair], held_out: list[SegmentPair],
                              documents: list[list[list[int]]]) -> float:
    """Held-out NSP accuracy of calling a pair IsNext when the tf-idf cosine similarity of its two segments
    (token ids; idf from the training `documents`) is above a cut-off, the one that scores best on `train`."""
    counts = Counter(t for document in documents for t in {t for sentence in document for t in sentence})
    idf = {t: math.log(len(documents) / n) for t, n in counts.items()}
    unseen = math.log(len(documents))  # a token no training document holds: as rare as can be

    def similarity(pair: SegmentPair) -> float:
        a, b = Counter(pair.tokens_a), Counter(pair.tokens_b)
        weight = {t: idf.get(t, unseen) for t in a.keys() | b.keys()}
        dot = sum(a[t] * b[t] * weight[t] ** 2 for t in a.keys() & b.keys())
        norm_a = math.sqrt(sum((c * weight[t]) ** 2 for t, c in a.items()))
        norm_b = math.sqrt(sum((c * weight[t]) ** 2 for t, c in b.items()))
        return dot / (norm_a * norm_b) if norm_a and norm_b else 0.0

    # the best cut on the training pairs: walk up the sorted similarities, moving one pair at a time to NotNext
    scored = sorted((similarity(p), p.label == IS_NEXT) for p in train)
    hits = best = sum(is_next for _, is_next in scored)  # cut below everything: all called IsNext
    cut = scored[0][0] - 1 if scored else 0.0
    for k, (value, is_next) in enumerate(scored):
        hits += -1 if is_next else 1
        if hits > best and (k + 1 == len(scored) or scored[k + 1][0] > value):
            best, cut = hits, value
    return sum((similarity(p) > cut) == (p.label == IS_NEXT) for p in held_out) / max(len(held_out), 1)
