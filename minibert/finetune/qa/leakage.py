"""The leakage guard: no paragraph of the training data may appear in the evaluation data.

Lecture 2.2 (outputs: copying a span out of the input); the extractive QA notebook (planned). A model trained
on a paragraph has read its answers: scored on questions about that same paragraph, it looks better than it
is. It happens with real files: the NTU ML 2023 homework 7 files are cut from DRCD, and
`hw7_dev.json` shares 171 paragraphs (605 questions) with `DRCD_test.json`, while `hw7_test.json` holds all
1,000 paragraphs (3,524 questions) of `DRCD_dev.json` (tests/test_qa_leakage.py). Paragraphs are compared
after Unicode NFKC normalisation (full-width and half-width forms alike) and with whitespace collapsed, so a
re-typed copy is caught too.
"""
from __future__ import annotations

import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .data import QAData, QAExample


class DataLeakError(ValueError):
    """Training and evaluation data share paragraphs."""


@dataclass
class Overlap:
    """Paragraphs found in both sets, and how many questions of each side are about them."""

    paragraphs: int
    train_questions: int
    eval_questions: int
    train_paragraphs: int  # distinct paragraphs on each side, for scale
    eval_paragraphs: int
    train_name: str
    eval_name: str

    def __bool__(self) -> bool:
        return self.paragraphs > 0

    def __str__(self) -> str:
        return (f"{self.paragraphs} of the {self.train_paragraphs} training paragraphs ({self.train_name}) are also "
                f"among the {self.eval_paragraphs} evaluation paragraphs ({self.eval_name}): "
                f"{self.train_questions} training and {self.eval_questions} evaluation questions are about them")


def normalize_paragraph(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split())


def find_overlap(train: Sequence[QAExample] | QAData, evaluation: Sequence[QAExample] | QAData,
                 train_name: str | None = None, eval_name: str | None = None) -> Overlap:
    """How many paragraphs, and questions about them, the two sets share."""
    normalized = {}  # a paragraph has several questions, and NFKC is slow on CJK text: once per paragraph
    for example in [*train, *evaluation]:
        if example.context not in normalized:
            normalized[example.context] = normalize_paragraph(example.context)
    train_contexts = [normalized[example.context] for example in train]
    eval_contexts = [normalized[example.context] for example in evaluation]
    shared = set(train_contexts) & set(eval_contexts)
    return Overlap(len(shared), sum(context in shared for context in train_contexts),
                   sum(context in shared for context in eval_contexts), len(set(train_contexts)),
                   len(set(eval_contexts)), train_name or _name(train, "the training data"),
                   eval_name or _name(evaluation, "the evaluation data"))


def check_no_overlap(train: Sequence[QAExample] | QAData, evaluation: Sequence[QAExample] | QAData,
                     allow: bool = False, train_name: str | None = None, eval_name: str | None = None) -> Overlap:
    """Raise DataLeakError if a training paragraph is in the evaluation data; with allow=True only warn.

    Names default to the files the QAData came from.
    """
    overlap = find_overlap(train, evaluation, train_name, eval_name)
    if overlap and not allow:
        raise DataLeakError(f"{overlap}. Scores on this evaluation data would be inflated; evaluate on other data, "
                            f"drop those paragraphs from training, or pass allow=True to go on")
    if overlap:
        warnings.warn(f"{overlap}; going on because overlap is allowed, but scores on it are inflated", stacklevel=2)
    return overlap


def _name(data, default: str) -> str:
    path = getattr(data, "path", None)
    return str(Path(path)) if path is not None else default
