"""Masked language modelling's corruption: choose 15% of the tokens, hide them, keep the originals as labels.

Lecture lectures/pretraining.md, section "Masked language model"; notebook notebooks/03_pretraining.ipynb.
As in Google's create_pretraining_data.py:
- in each sequence, round(15% of its ordinary tokens) are selected, never [CLS], [SEP] or [PAD] (and never
  [UNK]: its label would teach nothing and make the accuracy look better than it is);
- a selected token becomes [MASK] 80% of the time, a random token 10%, and stays itself 10%, so the model
  cannot assume that an unmasked token is always right, nor that [MASK] is all it will ever see;
- labels hold the original id at the selected positions and -100 everywhere else, and the loss counts only
  those positions;
- whole-word masking: the units drawn are words, not pieces, so `em ##bed ##ding` is hidden all at once
  and the model cannot guess `##ding` from the two pieces beside it.
Masks are drawn when a batch is made, never stored: each epoch hides other tokens (dynamic masking, RoBERTa).

Shape legend: b batch, n tokens, v vocabulary size.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..model.pretraining import IGNORE_INDEX


@dataclass
class Masker:
    vocab_size: int
    mask_token_id: int
    never_mask_ids: tuple[int, ...]        # [CLS], [SEP], [PAD], [UNK]
    word_start: Tensor | None = None       # v bool, False for `##` pieces; None = mask token by token
    probability: float = 0.15
    mask_fraction: float = 0.8             # of the selected tokens: -> [MASK]
    random_fraction: float = 0.1           # -> a random token; the rest stay as they are

    @classmethod
    def from_tokenizer(cls, tokenizer, whole_word: bool = False, probability: float = 0.15) -> "Masker":
        word_start = None
        if whole_word:
            tokens = tokenizer.convert_ids_to_tokens(list(range(tokenizer.vocab_size)))
            word_start = torch.tensor([not token.startswith("##") for token in tokens])
        never = (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id)
        return cls(tokenizer.vocab_size, tokenizer.mask_token_id, never, word_start, probability)

    def __call__(self, input_ids: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """input_ids (b n) -> (corrupted input_ids, labels), both (b n)."""
        candidates = ~torch.isin(input_ids, torch.tensor(self.never_mask_ids))
        starts = candidates.clone() if self.word_start is None else word_starts(input_ids, candidates, self.word_start)
        selected = select_positions(candidates, starts, self.probability, generator)
        return corrupt(input_ids, selected, self, generator)


def word_starts(input_ids: Tensor, candidates: Tensor, word_start: Tensor) -> Tensor:
    """b n bool: True where a word begins. A `##` piece right after [SEP] (segment B may start mid-word
    after truncation) begins a word too, as it has nothing to attach to."""
    starts = word_start[input_ids] & candidates
    starts[:, 1:] |= candidates[:, 1:] & ~candidates[:, :-1]
    starts[:, 0] |= candidates[:, 0]
    return starts


def select_positions(candidates: Tensor, starts: Tensor, probability: float,
                     generator: torch.Generator | None = None) -> Tensor:
    """b n bool: the positions to predict. Per row, whole units (a token, or a word = a start and the
    candidates after it) are taken in random order while the total stays within round(p x candidates)."""
    selected = torch.zeros_like(candidates)
    for row in range(candidates.shape[0]):
        positions = candidates[row].nonzero().squeeze(1)
        if len(positions) == 0:
            continue
        unit_of = starts[row, positions].cumsum(0) - 1   # the unit each candidate belongs to
        sizes = torch.bincount(unit_of, minlength=int(unit_of[-1]) + 1).tolist()
        budget = max(1, round(probability * len(positions)))
        chosen, total = [], 0
        for unit in torch.randperm(len(sizes), generator=generator).tolist():
            if total >= budget:
                break
            if total + sizes[unit] > budget:  # a word that would overshoot is skipped, as in Google's code
                continue
            chosen.append(unit)
            total += sizes[unit]
        selected[row, positions[torch.isin(unit_of, torch.tensor(chosen, dtype=torch.long))]] = True
    return selected


def corrupt(input_ids: Tensor, selected: Tensor, masker: Masker,
            generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """80% [MASK], 10% random token, 10% unchanged, token by token; labels -100 where not selected."""
    ### BEGIN SOLUTION mlm_corruption
    action = torch.rand(input_ids.shape, generator=generator)
    random_ids = torch.randint(masker.vocab_size, input_ids.shape, generator=generator)
    to_mask = selected & (action < masker.mask_fraction)
    to_random = selected & (action >= masker.mask_fraction) & (action < masker.mask_fraction + masker.random_fraction)
    corrupted = torch.where(to_mask, masker.mask_token_id, torch.where(to_random, random_ids, input_ids))
    labels = torch.where(selected, input_ids, IGNORE_INDEX)
    return corrupted, labels
    ### END SOLUTION
