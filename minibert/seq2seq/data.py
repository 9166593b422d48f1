"""Translation pairs from line-aligned files (Multi30k), and the batches both models train on.

Lecture 2.2 (outputs: a general sequence); notebook notebooks/06_general_sequence.ipynb. Multi30k task 1
(Elliott et al. 2016) ships one file per language and split, line i of `train.de` being the German of line i of
`train.en`; the shared copy is `../shared/data/multi30k/raw/` (see its SOURCE.md). The MiniLM vocabulary is
English, so German goes in (WordPiece cuts it into more, shorter pieces) and English comes out.

A batch is what `BertEncoderDecoder` and `BertForSeq2SeqLM` both take: the source as `[CLS] source [SEP]` with its
padding mask, and `labels`, the target's tokens followed by [SEP], -100 after it.

Shape legend: b pairs, s source tokens, t target tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..model.pretraining import IGNORE_INDEX
from ..resources import shared_data_dir

# Multi30k's file names of each split; test = the 2016 Flickr test set that papers report.
MULTI30K_SPLITS = {"train": "train", "val": "val", "test": "test_2016_flickr"}


@dataclass
class TranslationPairs:
    sources: list[str]
    targets: list[str]

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index) -> TranslationPairs:
        """pairs[:100]: the first hundred pairs, still a TranslationPairs."""
        return TranslationPairs(self.sources[index], self.targets[index])


def read_pairs(source_file: str | Path, target_file: str | Path) -> TranslationPairs:
    """Two line-aligned files -> pairs; a missing file or files of different lengths stop with what to do."""
    lines = []
    for path in map(Path, (source_file, target_file)):
        if not path.is_file():
            siblings = sorted(p.name for p in path.parent.iterdir()) if path.parent.is_dir() else []
            raise FileNotFoundError(f"no pair file {path}. Give two line-aligned text files, one sentence per line "
                                    f"(for Multi30k: train.de and train.en). In {path.parent}: "
                                    f"{', '.join(siblings) or 'no such folder'}.")
        lines.append(path.read_text(encoding="utf-8").splitlines())
    if len(lines[0]) != len(lines[1]):
        raise ValueError(f"the pair files are not aligned: {source_file} has {len(lines[0]):,} lines, {target_file} "
                         f"has {len(lines[1]):,}. Line i of one must be the translation of line i of the other: "
                         "check that both files are the same split and neither was cut or edited.")
    empty = [i + 1 for i, (s, t) in enumerate(zip(*lines)) if not s.strip() or not t.strip()]
    if empty:
        raise ValueError(f"{len(empty)} pairs have an empty side (line {empty[0]} first): a misaligned or damaged "
                         f"pair of files {source_file}, {target_file}.")
    return TranslationPairs(lines[0], lines[1])


def multi30k(split: str = "train", source: str = "de", target: str = "en",
             folder: str | Path | None = None) -> TranslationPairs:
    """Multi30k task 1 pairs of one split: train (29,000), val (1,014) or test (2016 Flickr, 1,000)."""
    if split not in MULTI30K_SPLITS:
        raise ValueError(f"unknown Multi30k split {split!r}; choose one of {', '.join(MULTI30K_SPLITS)}.")
    if folder is None:
        data = shared_data_dir()
        if data is None:
            raise FileNotFoundError("no shared datasets folder: set MINIBERT_DATA to the folder that holds "
                                    "multi30k/raw, or pass folder=.")
        folder = data / "multi30k" / "raw"
    name = MULTI30K_SPLITS[split]
    return read_pairs(Path(folder) / f"{name}.{source}", Path(folder) / f"{name}.{target}")


@dataclass
class TranslationBatch:
    input_ids: Tensor       # b s: [CLS] source [SEP], padded
    attention_mask: Tensor  # b s
    labels: Tensor          # b t: target tokens, [SEP], then -100


def encode_pairs(tokenizer, pairs: TranslationPairs, max_source_length: int = 64,
                 max_target_length: int = 64) -> TranslationBatch:
    """Tokenize a batch of pairs; too long a source or target is cut (its [SEP] kept)."""
    source = tokenizer(pairs.sources, max_length=max_source_length, truncation=True, padding=True,
                       return_tensors="pt")
    # the target's own [CLS] is dropped: the decoder's start token (v1) or the source's [SEP] (v2) stands there
    target = tokenizer(pairs.targets, max_length=max_target_length + 1, truncation=True, padding=True,
                       return_tensors="pt")
    labels = target.input_ids[:, 1:].masked_fill(target.attention_mask[:, 1:] == 0, IGNORE_INDEX)
    return TranslationBatch(source.input_ids, source.attention_mask, labels)
