"""Learn a WordPiece vocabulary from a corpus.

Lecture 1.1 (contextualized word embeddings), notebook notebooks/01_tokenizer.ipynb.

Cut the corpus into words with BERT's BasicTokenizer and spell every word in characters, the first one plain
and the others as continuations: "hug" -> h ##u ##g. Then, again and again, fuse the adjacent pair (a, b)
that most raises the likelihood of the corpus under a model that draws pieces independently (a unigram
model; this is WordPiece's rule, Schuster & Nakajima 2012). With f the counts and N the number of pieces,
log L = sum_s f(s) log(f(s) / N); fusing the c occurrences of `a b` turns f(a), f(b), N into f(a) - c,
f(b) - c, N - c and adds a piece ab of count c, and

    score(a, b) = log L after - log L before   ("likelihood", the default)

Frequent words become single pieces early (`the`, `said`), rare ones stay split into common parts.
The shortcut taught in the Hugging Face course keeps only the ratio inside the logarithm,

    score(a, b) = freq(ab) / (freq(a) * freq(b))   ("pmi")

which prefers pairs whose parts are rare: on a small corpus it learns whole rare words and leaves `the` as
`th ##e` (try both in notebooks/01_tokenizer.ipynb). Training stops at vocab_size tokens.
"""
from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from ..checkpoint import refuse_to_overwrite, write_text_atomically
from .basic import CONTINUATION, MAX_CHARS_PER_WORD, SPECIAL_TOKENS
from .fast import FastBasicTokenizer
from .wordpiece import WordPieceTokenizer

Pair = tuple[str, str]
SCORES = ("likelihood", "pmi")


def count_words(texts: Iterable[str], lowercase: bool = True) -> Counter[str]:
    """How often each word occurs, after the same clean-up and splitting the tokenizer uses."""
    basic = FastBasicTokenizer(lowercase=lowercase)  # the words of pretokenize.BasicTokenizer, sooner
    counts: Counter[str] = Counter()
    for text in texts:  # leave out [CLS] & co. written in the text, and words too long to be anything but [UNK]
        counts.update(word for word, _, _ in basic(text)
                      if word not in basic.special_tokens and len(word) <= MAX_CHARS_PER_WORD)
    return counts


def spell(word: str) -> list[str]:
    """The starting symbols of a word: "hug" -> ["h", "##u", "##g"]."""
    return [word[0]] + [CONTINUATION + ch for ch in word[1:]]


def fuse(a: str, b: str) -> str:
    """The token made of a followed by the continuation b: ("h", "##u") -> "hu", ("##u", "##g") -> "##ug"."""
    return a + b[len(CONTINUATION):]


class MergeState:
    """Every distinct word as its current list of symbols, with the symbol and pair counts kept up to date."""

    def __init__(self, word_counts: Counter[str], score: str = "likelihood"):
        if score not in SCORES:
            raise ValueError(f"score is {score!r}; choose 'likelihood' (WordPiece) or 'pmi' (the ratio alone).")
        self.score = self.likelihood_gain if score == "likelihood" else self.pmi
        self.total = 0  # pieces in the corpus, N
        self.words = [spell(word) for word in word_counts]
        self.counts = list(word_counts.values())
        self.symbol_freq: Counter[str] = Counter()
        self.pair_freq: Counter[Pair] = Counter()
        self.words_with_pair: defaultdict[Pair, set[int]] = defaultdict(set)  # only these change on a merge
        for index in range(len(self.words)):
            self._count(index, +1)

    def _count(self, index: int, sign: int) -> None:
        """Add (sign=+1) or take away (sign=-1) one word's symbols and pairs."""
        symbols, count = self.words[index], self.counts[index] * sign
        self.total += len(symbols) * count
        for symbol in symbols:
            _add(self.symbol_freq, symbol, count)
        for pair in zip(symbols, symbols[1:]):
            _add(self.pair_freq, pair, count)
            if sign > 0:
                self.words_with_pair[pair].add(index)

    def pmi(self, pair: Pair) -> float:
        """freq(ab) / (freq(a) * freq(b)): high when a and b mostly occur together, however rarely."""
        a, b = pair
        return self.pair_freq[pair] / (self.symbol_freq[a] * self.symbol_freq[b])

    def likelihood_gain(self, pair: Pair) -> float:
        """log L after fusing every `a b` minus log L before, with log L = sum_s f(s) log f(s) - N log N."""
        a, b = pair
        c, n = self.pair_freq[pair], self.total
        if a == b:  # `##s ##s`: a loses two pieces per fusion
            after = _xlogx(c) + _xlogx(self.symbol_freq[a] - 2 * c)
            before = _xlogx(self.symbol_freq[a])
        else:
            after = _xlogx(c) + _xlogx(self.symbol_freq[a] - c) + _xlogx(self.symbol_freq[b] - c)
            before = _xlogx(self.symbol_freq[a]) + _xlogx(self.symbol_freq[b])
        return after - before - (_xlogx(n - c) - _xlogx(n))

    def best_pair(self, min_frequency: int) -> Pair | None:
        """The pair with the highest score; ties go to the more frequent pair, then to the first in sort order."""
        candidates = [pair for pair, freq in self.pair_freq.items() if freq >= min_frequency]
        if not candidates:
            return None
        return min(candidates, key=lambda pair: (-self.score(pair), -self.pair_freq[pair], pair))

    def merge(self, pair: Pair) -> None:
        """Fuse every occurrence of a followed by b, left to right, in the words that have it."""
        a, b = pair
        fused = fuse(a, b)
        for index in self.words_with_pair.pop(pair):
            self._count(index, -1)
            symbols, merged, i = self.words[index], [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
                    merged.append(fused)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            self.words[index] = merged
            self._count(index, +1)


def _xlogx(x: float) -> float:
    return x * math.log(x) if x > 0 else 0.0  # 0 log 0 = 0; below 0 only when a ##s ##s ##s run overlaps


def _add(counter: Counter, key, amount: int) -> None:
    counter[key] += amount
    if counter[key] == 0:
        del counter[key]  # forget what no longer occurs, so that best_pair only looks at live pairs


def train_wordpiece(texts: Iterable[str], vocab_size: int, lowercase: bool = True, min_frequency: int = 2,
                    special_tokens: Sequence[str] = SPECIAL_TOKENS, score: str = "likelihood") -> list[str]:
    """A WordPiece vocabulary learnt from `texts`: special tokens, then characters, then merges in order.

    Stops early, with fewer than vocab_size tokens, when no pair occurs min_frequency times any more.
    `score`: "likelihood" (WordPiece's rule) or "pmi" (the Hugging Face course's ratio); see the top of this file.
    """
    word_counts = count_words(texts, lowercase)
    corpus = MergeState(word_counts, score)
    alphabet = sorted({symbol for symbols in corpus.words for symbol in symbols} - set(special_tokens))
    vocab = list(special_tokens) + alphabet
    if vocab_size < len(vocab):
        raise ValueError(f"vocab_size={vocab_size} is less than the {len(special_tokens)} special tokens plus the "
                         f"{len(alphabet)} characters of the corpus; ask for at least {len(vocab)}")
    known = set(vocab)
    while len(vocab) < vocab_size:
        pair = corpus.best_pair(min_frequency)
        if pair is None:
            break
        corpus.merge(pair)
        token = fuse(*pair)
        if token not in known:  # two different merges can spell the same token
            vocab.append(token)
            known.add(token)
    return vocab


def write_vocab(vocab: Sequence[str], path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save a vocabulary as vocab.txt: one token per line, the line number being the id."""
    path = Path(path)
    refuse_to_overwrite(path, overwrite)
    write_text_atomically(path, "".join(token + "\n" for token in vocab))
    return path


def train_tokenizer(texts: Iterable[str], vocab_size: int, lowercase: bool = True,
                    min_frequency: int = 2, score: str = "likelihood") -> WordPieceTokenizer:
    """train_wordpiece, then a WordPieceTokenizer that uses the learnt vocabulary."""
    vocab = train_wordpiece(texts, vocab_size, lowercase=lowercase, min_frequency=min_frequency, score=score)
    return WordPieceTokenizer(vocab, lowercase=lowercase, source="the trained vocab")
