"""BERT's "basic tokenizer" to the last detail: clean the text and cut it into words, remembering where each came from.

Lecture 1.1 (contextualized word embeddings), notebook notebooks/01_tokenizer.ipynb. Read basic.py first: its
`normalize` and `split_words` are these steps for plain text; this module adds what makes the words equal to
the reference's on any text, and the offsets.

Before WordPiece sees a text, BERT (Google's `BasicTokenizer`; `BertNormalizer` + `BertPreTokenizer` in Hugging
Face's `BertTokenizerFast`) does this, in this order:

1. clean-up: drop NUL, U+FFFD and control, format and private-use characters; any whitespace becomes a space;
2. put spaces around every CJK ideograph, so that each one is a word of its own;
3. uncased models only: decompose (NFD), drop the accents (category Mn) and lower-case;
4. split on whitespace, and make every punctuation character a word of its own.
The special tokens ([CLS], [SEP], ...) are found in the raw text before all that, and kept whole.

We cut the *original* text into raw words first and normalise each raw word afterwards, which gives the same
words but lets the tokenizer cache its work per raw word (fast.py). Each character of a normalised word remembers the
index of the original character it came from: that is what gives every token its exact character offsets.

Where Google's BERT and the Rust reference disagree we follow the reference, which the tests compare against:
its fifth CJK block starts at U+2B920, it also drops private-use characters, it keeps unassigned code points,
and it lower-cases one character at a time (so no final-sigma rule). Python's `unicodedata` knows Unicode 14
while the reference's category tables are older, so about 560 code points added to Unicode since 2016 (new
punctuation, format characters and accent marks of rare scripts) are classified differently.
"""
from __future__ import annotations

import re
import sys
import unicodedata
from functools import cache

from .basic import SPECIAL_TOKENS, is_punctuation

# The blocks of CJK ideographs that become one word per character (CJK Unified Ideographs, Extensions A-E,
# Compatibility Ideographs and their Supplement). Korean and Japanese kana are not in them: they have spaces.
CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)
# BERT counts all ASCII symbols as punctuation ($ + < = > ^ ` | ~ are "symbols" to Unicode): 33-47, 58-64, ...
ASCII_PUNCTUATION_RANGES = ((33, 47), (58, 64), (91, 96), (123, 126))
WHITESPACE_CONTROLS = "\t\n\r"  # control characters by category, but BERT treats them as spaces


def is_dropped(ch: str) -> bool:
    """True for the characters the clean-up deletes: NUL, U+FFFD, control (Cc), format (Cf), private use (Co)."""
    if ch in WHITESPACE_CONTROLS:
        return False
    return ch == "\0" or ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Cf", "Co")


def is_whitespace(ch: str) -> bool:
    return ch in WHITESPACE_CONTROLS or (ch.isspace() and not is_dropped(ch))


def regex_class(ranges) -> str:
    """The inside of a regex [...] that matches the code point ranges, e.g. \\U00004e00-\\U00009fff."""
    return "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in ranges)


def _as_ranges(code_points: list[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for code in sorted(set(code_points)):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return ranges


@cache
def unicode_classes() -> tuple[str, str]:
    """Regex classes of all whitespace and all punctuation characters: one scan of Unicode (~0.3 s, once)."""
    every_char = [chr(code) for code in range(sys.maxunicode + 1)]
    spaces = [ord(ch) for ch in every_char if ch.isspace() and is_whitespace(ch)]
    punctuation = [ord(ch) for ch in every_char if unicodedata.category(ch).startswith("P")]
    punctuation += [code for low, high in ASCII_PUNCTUATION_RANGES for code in range(low, high + 1)]
    return regex_class(_as_ranges(spaces)), regex_class(_as_ranges(punctuation))


def word_pattern(space: str, punctuation: str, cjk: str) -> str:
    """One punctuation or CJK character, or a run of anything else that is not a space.

    Characters that the clean-up drops stay inside the run, so "ab<U+200B>cd" is one word, as in BERT.
    """
    singles = f"[{cjk}{punctuation}]" if cjk or punctuation else ""
    run = f"[^{space}{punctuation}{cjk}]+"
    return f"{singles}|{run}" if singles else run


def decompose(pairs: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """NFD of (char, origin) pairs: "é" becomes "e" + U+0301, then each run of marks is sorted by class.

    Like the reference, origins are handed out by position: the k-th character that starts a decomposition
    gets the k-th origin, the other characters that of the one before them. (It only shows when the sorting
    moves a mark that survives accent stripping.)
    """
    parts = [(part, i == 0) for ch, _ in pairs for i, part in enumerate(unicodedata.normalize("NFD", ch))]
    origins = iter([origin for _, origin in pairs])
    decomposed, origin = [], -1
    for part, starts_a_char in _canonical_order(parts):
        if starts_a_char:
            origin = next(origins)
        decomposed.append((part, origin))
    return decomposed


def _canonical_order(parts: list) -> list:
    """Sort every run of combining marks by combining class (stable), as NFD does across characters."""
    ordered, marks = [], []
    for part in parts:
        if unicodedata.combining(part[0]):
            marks.append(part)
        else:
            ordered += sorted(marks, key=lambda mark: unicodedata.combining(mark[0])) + [part]
            marks = []
    return ordered + sorted(marks, key=lambda mark: unicodedata.combining(mark[0]))


class BasicTokenizer:
    """Cuts text into words with their character spans; `normalize` turns a raw word into what WordPiece sees.

    >>> BasicTokenizer()("Héllo, [MASK] 今天!")
    [('hello', 0, 5), (',', 5, 6), ('[MASK]', 7, 13), ('今', 14, 15), ('天', 15, 16), ('!', 16, 17)]
    """

    def __init__(self, lowercase: bool = True, strip_accents: bool | None = None,
                 split_chinese_chars: bool = True, special_tokens=SPECIAL_TOKENS):
        self.lowercase = lowercase
        self.strip_accents = lowercase if strip_accents is None else strip_accents  # BERT's default
        self.split_chinese_chars = split_chinese_chars
        self.special_tokens = frozenset(special_tokens)
        # Longest first, so that a special token that starts another one cannot cut it short.
        specials = "".join(re.escape(token) + "|" for token in sorted(self.special_tokens, key=len, reverse=True))
        self._specials_pattern = specials
        self._unicode_words: re.Pattern | None = None  # built on the first text: it scans all of Unicode once

    def split(self, text: str):
        """Iterate over the raw words of `text` as regex matches (match[0] is the word, match.start() its start)."""
        if self._unicode_words is None:
            space, punctuation = unicode_classes()
            cjk = regex_class(CJK_RANGES) if self.split_chinese_chars else ""
            self._unicode_words = re.compile(self._specials_pattern + word_pattern(space, punctuation, cjk))
        return self._unicode_words.finditer(text)

    def normalize(self, raw: str) -> list[tuple[str, list[int] | None]]:
        """The words that `raw` becomes, each with origins[i] = index in `raw` of the char that made char i.

        Usually one word comes back; none when every character is dropped; several in the rare case where NFD
        turns a symbol into punctuation (U+1FEF becomes "`"), since BERT splits after normalising. (fast.py's
        shortcut for plain ASCII gives origins None: char i came from raw[i].)
        """
        pairs = [(ch, index) for index, ch in enumerate(raw) if not is_dropped(ch)]  # (char, origin)
        if self.strip_accents:
            pairs = [(ch, origin) for ch, origin in decompose(pairs) if unicodedata.category(ch) != "Mn"]
        if self.lowercase:  # one character at a time, like the reference: no final-sigma rule
            pairs = [(low, origin) for ch, origin in pairs for low in ch.lower()]
        word = "".join(ch for ch, _ in pairs)
        origins = [origin for _, origin in pairs]
        return self._split_normalized(word, origins) if word else []

    @staticmethod
    def _split_normalized(word: str, origins: list[int]) -> list[tuple[str, list[int]]]:
        words, start = [], 0
        for end, ch in enumerate(word):
            if is_whitespace(ch) or is_punctuation(ch):
                if start < end:
                    words.append((word[start:end], origins[start:end]))
                if not is_whitespace(ch):
                    words.append((ch, origins[end:end + 1]))
                start = end + 1
        if start < len(word):
            words.append((word[start:], origins[start:]))
        return words

    def __call__(self, text: str) -> list[tuple[str, int, int]]:
        """(word, start, end) for every word, with text[start:end] the original characters it came from."""
        words = []
        for match in self.split(text):
            raw, start = match[0], match.start()
            if raw in self.special_tokens:
                words.append((raw, start, match.end()))
                continue
            for word, origins in self.normalize(raw):
                if origins is None:
                    words.append((word, start, start + len(word)))
                else:
                    words.append((word, start + origins[0], start + origins[-1] + 1))
        return words


def pre_tokenize(text: str, lowercase: bool = True) -> list[tuple[str, int, int]]:
    """BERT's words of `text` as (word, start, end); builds a BasicTokenizer each call, so use one in loops."""
    return BasicTokenizer(lowercase=lowercase)(text)
