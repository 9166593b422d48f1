"""The WordPiece tokenizer in its plain form: the lesson, before the details that make it exact and fast.

Lecture 1.1 ("From text to token ids: WordPiece") and 2.1 (inputs: one sentence, or two joined by [SEP]);
notebook notebooks/01_tokenizer.ipynb, section 0. Google BERT's `FullTokenizer` (`BasicTokenizer` then
`WordpieceTokenizer`) read at its simplest; the full tokenizer, `WordPieceTokenizer`, calls the same greedy
match below (it is written once).

1. normalise: lower-case, and strip the accents as uncased BERT does ("Café" -> "cafe");
2. split into words on whitespace, and make every punctuation character a word of its own;
3. cut each word greedily, longest match first: the longest prefix of the word in the vocabulary, then the
   longest "##" piece that continues the rest, and so on ("unaffable" -> una ##ffa ##ble). A word with no such
   cut, or longer than 100 characters, becomes the one token [UNK];
4. add the special tokens: [CLS] a [SEP], or for a pair [CLS] a [SEP] b [SEP], with segment ids 0 then 1.

On plain ASCII English it gives the ids of the full tokenizer and so of transformers' `BertTokenizerFast`
(tests/test_tokenizer_basic.py checks every such line of WikiText-2 and SST-2). What it leaves out, and where
the full one does it:
- Chinese characters, each split off as a word of its own (pretokenize.py, CJK_RANGES);
- control and format characters dropped, and every Unicode space counted as one (pretokenize.py, is_dropped);
- "[MASK]" and the other special tokens kept whole when written in the text (pretokenize.py, BasicTokenizer);
- offsets: the span of the original text each token came from, which extractive QA needs to copy the
  answer out (pretokenize.py, BasicTokenizer.normalize; wordpiece.py);
- NFD details: one character lower-cased at a time, combining marks reordered across characters, as the
  reference does (pretokenize.py, decompose);
- cased vocabularies, truncation, padding, batches, tensors, decoding (wordpiece.py);
- speed: caches and ASCII shortcuts (fast.py).
"""
from __future__ import annotations

import string
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Container, Sequence

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
UNK, CLS, SEP = "[UNK]", "[CLS]", "[SEP]"
CONTINUATION = "##"  # "##able" can only continue a word, "able" only start one
MAX_CHARS_PER_WORD = 100  # BERT's max_input_chars_per_word: a longer word is one [UNK]


def normalize(text: str) -> str:
    """Lower-case, then strip accents: NFD turns "é" into "e" + U+0301, a combining mark (category Mn)."""
    return "".join(ch for ch in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(ch) != "Mn")


def is_punctuation(ch: str) -> bool:
    """Unicode punctuation (categories P*), and every ASCII symbol: BERT counts $ + < = > ^ ` | ~ too."""
    return ch in string.punctuation or unicodedata.category(ch).startswith("P")


def split_words(text: str) -> list[str]:
    """Split on whitespace, and make every punctuation character a word of its own: "hi, you!" -> hi , you !"""
    words = []
    for chunk in text.split():
        word = ""
        for ch in chunk:
            if not is_punctuation(ch):
                word += ch
                continue
            if word:
                words.append(word)
            words.append(ch)
            word = ""
        if word:
            words.append(word)
    return words


def greedy_longest_match(word: str, vocab: Container[str], max_chars: int = MAX_CHARS_PER_WORD) -> list[str]:
    """WordPiece: the pieces of one word, each the longest that the vocabulary has; ["[UNK]"] if there is none.

    "unaffable": "unaffable", "unaffabl", ... "unaf" are not in the vocabulary, "una" is; then for the rest
    "##ffable" ... "##ffab" are not, "##ffa" is; then "##ble" is: una ##ffa ##ble.
    """
    if len(word) > max_chars:
        return [UNK]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:  # longest candidate first
            piece = word[start:end] if start == 0 else CONTINUATION + word[start:end]
            if piece in vocab:
                break
            end -= 1
        else:  # not even one character of the rest is in the vocabulary: the whole word is unknown
            return [UNK]
        pieces.append(piece)
        start = end
    return pieces


def read_vocab(path: str | Path) -> list[str]:
    """The tokens of a vocab.txt, one per line: the line number, counted from 0, is the id."""
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    return lines[:-1] if lines[-1] == "" else lines  # the newline that ends the last line


@dataclass
class BasicEncoding:
    input_ids: list[int]
    token_type_ids: list[int]  # 0 for [CLS] a [SEP], 1 for b [SEP]


class BasicWordPieceTokenizer:
    """Normalise, split into words, cut each word into WordPiece pieces, add [CLS] and [SEP]."""

    def __init__(self, vocab: Sequence[str]):
        self.vocab = list(vocab)
        self.token_to_id = {token: i for i, token in enumerate(self.vocab)}

    @classmethod
    def from_file(cls, vocab_path: str | Path) -> BasicWordPieceTokenizer:
        return cls(read_vocab(vocab_path))

    def tokenize(self, text: str) -> list[str]:
        """The pieces of a text, without [CLS] and [SEP]: "Unaffable!" -> una ##ffa ##ble !"""
        words = split_words(normalize(text))
        return [piece for word in words for piece in greedy_longest_match(word, self.token_to_id)]

    def encode(self, text: str, pair: str | None = None) -> BasicEncoding:
        """[CLS] text [SEP] (pair [SEP]) as ids, and the segment of each: 0 for the first part, 1 for the pair."""
        tokens = [CLS, *self.tokenize(text), SEP]
        token_type_ids = [0] * len(tokens)
        if pair is not None:
            second = [*self.tokenize(pair), SEP]
            tokens += second
            token_type_ids += [1] * len(second)
        return BasicEncoding([self.token_to_id[token] for token in tokens], token_type_ids)
