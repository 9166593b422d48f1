"""Helpers that build the Hugging Face reference next to a minibert model, for the parity tests."""
from __future__ import annotations

import torch

TEXTS = [
    "The bank raised its interest rates.",
    "We sat on the bank of the river and watched the boats.",
    "Contextualized embeddings give the same word different vectors.",
    "今天天氣很好，我們去河邊散步。",
]
PAIRS = [
    ("Where did they sit?", "They sat on the bank of the river and watched the boats go by."),
    ("What changed?", "The bank raised its rates."),
]


def reference_batches(checkpoint_dir, transformers):
    """Padded batches of single texts and of pairs, tokenized by the reference tokenizer."""
    tokenizer = transformers.BertTokenizerFast.from_pretrained(checkpoint_dir)
    singles = tokenizer(TEXTS, padding=True, return_tensors="pt")
    pairs = tokenizer([q for q, _ in PAIRS], [c for _, c in PAIRS], padding=True, return_tensors="pt")
    return {"singles": singles, "pairs": pairs}


def random_batch(vocab_size: int, batch: int, length: int, type_vocab_size: int, seed: int = 0):
    """Random ids with a ragged padding mask and two segments, from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, vocab_size, (batch, length), generator=g)
    lengths = torch.randint(length // 2, length + 1, (batch,), generator=g)
    lengths[0] = length  # at least one row without padding
    attention_mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    token_type_ids = (torch.arange(length)[None, :] >= lengths[:, None] // 2).long() % type_vocab_size
    input_ids = input_ids * attention_mask
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids * attention_mask}
