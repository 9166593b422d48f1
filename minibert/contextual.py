"""Contextualized word embeddings: the same word gets a different vector in every sentence.

Lecture 1.1 (what a pre-trained model is); notebook notebooks/02_attention_and_encoder.ipynb and the demo
(`python -m minibert demo`). The helpers here find a word's tokens through the tokenizer's character
offsets, so they work for words that WordPiece splits into several pieces.
"""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import Tensor


@torch.no_grad()
def word_vectors(model, tokenizer, sentences: list[str], word: str) -> Tensor:
    """The vector of `word` in each sentence at every layer: (layers + 1, sentences, hidden).

    Row 0 is the embedding layer (before any attention), row -1 the last layer. A word that WordPiece
    splits into pieces gets the mean of its pieces' vectors.
    """
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    out = model(batch.input_ids, batch.attention_mask, batch.token_type_ids, output_hidden_states=True)
    hidden = torch.stack(out.hidden_states)  # (layers+1) b n (h d)
    vectors = []
    for i, sentence in enumerate(sentences):
        match = re.search(rf"\b{re.escape(word)}\b", sentence, flags=re.IGNORECASE)
        if match is None:
            raise ValueError(f"the word {word!r} does not occur in the sentence {sentence!r}.")
        pieces = [t for t, (start, end) in enumerate(batch.offsets[i])
                  if end > start and start >= match.start() and end <= match.end()]
        vectors.append(hidden[:, i, pieces].mean(dim=1))
    return torch.stack(vectors, dim=1)


def cosine_matrix(vectors: Tensor) -> Tensor:
    """(s, h) -> (s, s) cosine similarity of every pair of rows."""
    unit = F.normalize(vectors, dim=-1)
    return unit @ unit.T


def within_and_across(similarity: Tensor, groups: list[int]) -> tuple[float, float]:
    """Mean similarity of pairs in the same group (off the diagonal) and of pairs in different groups."""
    groups = torch.tensor(groups)
    same = groups[:, None] == groups[None, :]
    off_diagonal = ~torch.eye(len(groups), dtype=torch.bool)
    return similarity[same & off_diagonal].mean().item(), similarity[~same].mean().item()
