"""The tokenizer's speed work, kept apart from the plain path it must equal: caches and shortcuts.

Lecture 1.1 ("Readable and fast"); `python -m minibert bench speed` measures it against transformers'
`BertTokenizerFast` (written in Rust). `WordPieceTokenizer(..., use_fast=True)`, the default, uses all three;
`use_fast=False` runs the plain path of pretokenize.py and wordpiece.py alone. tests/test_tokenizer_fast.py
proves the two equal, id for id and offset for offset, on every line of the shared corpora in several
scripts and on hypothesis' arbitrary Unicode, cased and uncased.

- `FastBasicTokenizer`: plain ASCII text (most English) is split by a regex of ASCII classes instead of
  the one built from all of Unicode, and a raw ASCII word without control characters is normalised by
  `str.lower()` alone, with no NFD, no per-character clean-up and no origins list to build.
- `WordCache`: a text is mostly words seen before, so the tokens of each raw word (ids and spans) are
  remembered, and a known word costs one dict look-up instead of normalising and WordPiece matching again.
- `cyclic_gc_paused`: Python's cycle collector is off while a batch is encoded: about 2x on a large batch.
Together, on 2,000 lines of WikiText-2 (one core, CPU time), about 10x faster than the plain path: 540,000
tokens/s against 51,000. (basic.py, which skips the exact Unicode clean-up and the offsets, does 330,000.)
"""
from __future__ import annotations

import contextlib
import gc
import re
from typing import Callable, Iterator

from .pretokenize import ASCII_PUNCTUATION_RANGES, BasicTokenizer, word_pattern, regex_class

CACHE_SIZE = 200_000  # raw words remembered before the cache starts over
ASCII_SPACE_CLASS = regex_class([(9, 10), (13, 13), (32, 32)])  # \t \n \r and the space
ASCII_PUNCTUATION_CLASS = regex_class(ASCII_PUNCTUATION_RANGES)
ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # what the clean-up drops from ASCII text

Tokens = tuple[tuple[int, int, int], ...]  # (id, start, end) of each token of a raw word, spans in the word


class FastBasicTokenizer(BasicTokenizer):
    """BasicTokenizer with shortcuts for ASCII text; anything else goes to the plain path."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._ascii_words = re.compile(self._specials_pattern
                                       + word_pattern(ASCII_SPACE_CLASS, ASCII_PUNCTUATION_CLASS, ""))

    def split(self, text: str):
        if text.isascii():  # no CJK, no Unicode spaces or punctuation: the small classes say the same
            return self._ascii_words.finditer(text)
        return super().split(text)

    def normalize(self, raw: str) -> list[tuple[str, list[int] | None]]:
        if raw.isascii() and not ASCII_CONTROL.search(raw):  # nothing to drop, decompose or split again
            return [(raw.lower() if self.lowercase else raw, None)]
        return super().normalize(raw)


class WordCache:
    """Ids and offsets of a text, remembering the tokens of every raw word it has seen."""

    def __init__(self, split: Callable[[str], Iterator[re.Match]], tokenize_raw_word: Callable[[str], Tokens]):
        self.split = split
        self.tokenize_raw_word = tokenize_raw_word
        self.words: dict[str, Tokens] = {}

    def __call__(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        ids, offsets = [], []
        words = self.words
        for match in self.split(text):
            tokens = words.get(match[0])
            if tokens is None:
                if len(words) >= CACHE_SIZE:
                    words.clear()  # crude but enough: the frequent words come back at once
                tokens = words[match[0]] = self.tokenize_raw_word(match[0])
            start = match.start()
            for token_id, token_start, token_end in tokens:
                ids.append(token_id)
                offsets.append((start + token_start, start + token_end))
        return ids, offsets


@contextlib.contextmanager
def cyclic_gc_paused():
    """Python's cycle collector off for a while, then back as it was.

    A batch makes millions of small lists and offset tuples, none of them in a reference cycle (reference
    counting frees them all), yet each 700 new objects start a collection, and the older generations are walked
    again and again: half the time of a large batch. With the collector paused it goes about 2x faster.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
