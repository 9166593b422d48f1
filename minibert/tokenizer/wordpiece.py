"""The full WordPiece tokenizer: basic.py's lesson, exact on any text, with offsets, batches and tensors.

Lecture 1.1 (contextualized word embeddings) and 2.1 (inputs: one sentence, or two joined by [SEP]); notebook
notebooks/01_tokenizer.ipynb. Counterpart: Hugging Face's `BertTokenizerFast`, which it matches id for id and
offset for offset on every line of the shared corpora (tests/test_tokenizer_parity.py).

Read basic.py first: the words come from pretokenize.py (the reference's clean-up and splitting, each
character remembering where it came from), each word goes through basic.py's `greedy_longest_match` ("unaffable"
-> una ##ffa ##ble), and the spans of the pieces are mapped back to the original text. A text becomes
[CLS] a [SEP], a pair [CLS] a [SEP] b [SEP], with truncation and padding as in transformers. With
use_fast=True (the default) the caches and ASCII shortcuts of fast.py run instead, proven equal.
"""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from ..checkpoint import write_text_atomically
from .basic import CONTINUATION, MAX_CHARS_PER_WORD, SPECIAL_TOKENS, UNK, greedy_longest_match, read_vocab
from .fast import FastBasicTokenizer, WordCache, cyclic_gc_paused
from .pretokenize import BasicTokenizer

TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second")
PADDING_STRATEGIES = ("longest", "max_length")
# The reference's decoder glues these onto the token before them; it checks each token on its own.
DECODE_CLEANUPS = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                   (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


@dataclass
class Encoding:
    """What the tokenizer returns: ids and masks for the model, offsets to map tokens back to the text.

    One text gives lists, a batch gives lists of lists. With return_tensors="pt" the first three fields are
    torch.long tensors of shape (batch, seq), batch = 1 for one text; offsets stay lists.
    """

    input_ids: Any
    token_type_ids: Any  # 0 for [CLS] a [SEP], 1 for b [SEP]
    attention_mask: Any  # 1 for real tokens, 0 for [PAD]
    offsets: list  # (start, end): text[start:end] made the token; (0, 0) for [CLS], [SEP] and [PAD]
    vocabulary: Sequence[str] = field(default=(), repr=False, compare=False)

    @property
    def tokens(self) -> list:
        """The token strings, computed on demand."""
        ids = self.input_ids.tolist() if isinstance(self.input_ids, torch.Tensor) else self.input_ids
        if ids and isinstance(ids[0], list):
            return [[self.vocabulary[i] for i in row] for row in ids]
        return [self.vocabulary[i] for i in ids]


class WordPieceTokenizer:
    """BERT's tokenizer: BasicTokenizer words, then greedy longest-match-first WordPiece, then special tokens."""

    def __init__(self, vocab: Sequence[str], lowercase: bool = True, strip_accents: bool | None = None,
                 split_chinese_chars: bool = True, model_max_length: int = 512, source: str = "the vocab",
                 use_fast: bool = True):
        """vocab: the tokens, the position of each being its id; source names the vocab in error messages.

        use_fast: the caches and shortcuts of fast.py (same ids and offsets, about 10x faster); False runs the
        plain path alone. The name is transformers' (AutoTokenizer's use_fast), the meaning is minibert's.
        """
        self.vocab = list(vocab)
        self.token_to_id = _check_vocab(self.vocab, source)
        self.lowercase = lowercase
        self.strip_accents = strip_accents  # None: strip them when lower-casing, as BERT does
        self.split_chinese_chars = split_chinese_chars
        self.model_max_length = model_max_length
        self.use_fast = use_fast
        self.basic = (FastBasicTokenizer if use_fast else BasicTokenizer)(
            lowercase, strip_accents, split_chinese_chars, SPECIAL_TOKENS)
        self._special_ids = {token: self.token_to_id[token] for token in SPECIAL_TOKENS}
        self._cache = WordCache(self.basic.split, self._tokenize_raw_word) if use_fast else None

    # ---- loading and saving ----

    @classmethod
    def from_file(cls, vocab_path: str | os.PathLike, lowercase: bool = True, **options) -> WordPieceTokenizer:
        """A tokenizer from a vocab.txt (one token per line; the line number is the id)."""
        return cls(_read_vocab(Path(vocab_path)), lowercase=lowercase, source=str(vocab_path), **options)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, use_fast: bool = True) -> WordPieceTokenizer:
        """A tokenizer from a Hugging Face folder: vocab.txt, and tokenizer_config.json if there is one."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder; expected a BERT checkpoint folder with vocab.txt")
        config_path = folder / "tokenizer_config.json"
        config = {}
        if config_path.is_file():
            try:
                config = json.loads(config_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as error:
                raise ValueError(f"{config_path} is not valid JSON ({error}); fix or delete it") from error
        return cls.from_file(
            folder / "vocab.txt",
            lowercase=config.get("do_lower_case", True),
            strip_accents=config.get("strip_accents"),
            split_chinese_chars=config.get("tokenize_chinese_chars", True),
            model_max_length=config.get("model_max_length", 512),
            use_fast=use_fast,
        )

    def save_pretrained(self, folder: str | os.PathLike, overwrite: bool = False) -> list[Path]:
        """Write vocab.txt and tokenizer_config.json, which transformers' BertTokenizerFast can load."""
        folder = Path(folder)
        config = {
            "tokenizer_class": "BertTokenizer", "do_lower_case": self.lowercase,
            "strip_accents": self.strip_accents, "tokenize_chinese_chars": self.split_chinese_chars,
            "model_max_length": self.model_max_length,
            "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
            "mask_token": "[MASK]",
        }
        files = {folder / "vocab.txt": "".join(token + "\n" for token in self.vocab),
                 folder / "tokenizer_config.json": json.dumps(config, indent=2) + "\n"}
        existing = [path.name for path in files if path.exists()]
        if existing and not overwrite:
            raise FileExistsError(f"{folder} already has {' and '.join(existing)}; "
                                  f"pass overwrite=True to replace, or save to another folder")
        folder.mkdir(parents=True, exist_ok=True)
        for path, text in files.items():
            write_text_atomically(path, text)
        return list(files)

    # ---- the vocabulary ----

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def pad_token_id(self) -> int:
        return self._special_ids["[PAD]"]

    @property
    def unk_token_id(self) -> int:
        return self._special_ids["[UNK]"]

    @property
    def cls_token_id(self) -> int:
        return self._special_ids["[CLS]"]

    @property
    def sep_token_id(self) -> int:
        return self._special_ids["[SEP]"]

    @property
    def mask_token_id(self) -> int:
        return self._special_ids["[MASK]"]

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        """Id of each token; [UNK]'s id for a token the vocabulary lacks."""
        if isinstance(tokens, str):
            return self.token_to_id.get(tokens, self.unk_token_id)
        return [self.token_to_id.get(token, self.unk_token_id) for token in tokens]

    def convert_ids_to_tokens(self, ids: int | Sequence[int]) -> str | list[str]:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        if isinstance(ids, int):
            return self._token(ids)
        return [self._token(i) for i in ids]

    def _token(self, token_id: int) -> str:
        if not 0 <= token_id < len(self.vocab):
            raise IndexError(f"token id {token_id} is outside the vocabulary (ids 0..{len(self.vocab) - 1}); "
                             f"were these ids made with another vocab?")
        return self.vocab[token_id]

    # ---- one word ----

    def _word_pieces(self, word: str) -> list[tuple[int, int, int]]:
        """(id, start, end) of the pieces of one normalised word, the spans being character indices in it."""
        pieces = greedy_longest_match(word, self.token_to_id, MAX_CHARS_PER_WORD)
        if pieces == [UNK]:  # a word never contains "[" (punctuation), so this is the unknown word
            return [(self.unk_token_id, 0, len(word))]
        spans, start = [], 0
        for piece in pieces:  # the piece is word[start:end], after "##" but for the first one
            end = start + len(piece) - (len(CONTINUATION) if start > 0 else 0)
            spans.append((self.token_to_id[piece], start, end))
            start = end
        return spans

    def _tokenize_raw_word(self, raw: str) -> tuple[tuple[int, int, int], ...]:
        """(id, start, end) for every token of a raw word, the spans being character indices in `raw`."""
        tokens = []
        if raw in self._special_ids:  # [CLS] & co. written in the text
            tokens.append((self._special_ids[raw], 0, len(raw)))
        else:
            for word, origins in self.basic.normalize(raw):
                for token_id, start, end in self._word_pieces(word):
                    if origins is not None:  # normalising moved characters: map back to the raw ones
                        start, end = origins[start], origins[end - 1] + 1
                    tokens.append((token_id, start, end))
        return tuple(tokens)

    # ---- one text ----

    def _encode_text(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids and offsets of a text, without special tokens."""
        if self._cache is not None:
            return self._cache(text)  # fast.py: the same, remembering each raw word's tokens
        ids, offsets = [], []
        for match in self.basic.split(text):
            for token_id, token_start, token_end in self._tokenize_raw_word(match[0]):
                ids.append(token_id)
                offsets.append((match.start() + token_start, match.start() + token_end))
        return ids, offsets

    def tokenize(self, text: str) -> list[str]:
        """The tokens of a text, without [CLS] and [SEP]."""
        return [self.vocab[i] for i in self._encode_text(text)[0]]

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """Text from ids: "##" pieces join the token before them, and no space goes before . , ! ?"""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(f"decode takes one sequence of ids, got a tensor of shape {tuple(ids.shape)}; "
                                 f"decode each row: [tok.decode(row) for row in ids]")
            ids = ids.tolist()
        tokens = self.convert_ids_to_tokens(list(ids))
        if skip_special_tokens:
            tokens = [token for token in tokens if token not in self._special_ids]
        pieces = []
        for i, token in enumerate(tokens):
            if i > 0:
                token = token[len(CONTINUATION):] if token.startswith(CONTINUATION) else " " + token
            for before, after in DECODE_CLEANUPS:
                token = token.replace(before, after)
            pieces.append(token)
        return "".join(pieces)

    # ---- texts and pairs, the way BERT reads them ----

    def __call__(self, text, text_pair=None, *, max_length: int | None = None, truncation=None,
                 padding=False, return_tensors: str | None = None) -> Encoding:
        """Encode one text, a pair, or a batch of either, as [CLS] a [SEP] (b [SEP]).

        truncation: True or "longest_first" cuts the longer of the two first, "only_first" / "only_second" cut
        just one; None (the default) means "longest_first" when max_length is given without padding, as in
        transformers. padding: True or "longest" pads to the longest of the batch, "max_length" to max_length.
        """
        with cyclic_gc_paused() if self.use_fast else contextlib.nullcontext():  # fast.py: 2x on large batches
            return self._encode(text, text_pair, max_length, truncation, padding, return_tensors)

    def _encode(self, text, text_pair, max_length, truncation, padding, return_tensors) -> Encoding:
        firsts, seconds, batched = _as_batch(text, text_pair)
        strategy, max_length = self._truncation_plan(truncation, max_length, padding)
        pad_to = _padding_plan(padding, max_length)
        if return_tensors not in (None, "pt"):
            raise ValueError(f"return_tensors must be None (lists) or 'pt' (torch tensors), got {return_tensors!r}")
        rows = [self._encode_row(a, b, strategy, max_length) for a, b in zip(firsts, seconds)]
        if pad_to == "longest":
            pad_to = max((len(row[0]) for row in rows), default=0)
        if pad_to is not None:
            rows = [self._pad(row, pad_to) for row in rows]
        input_ids, token_type_ids, attention_mask, offsets = (list(column) for column in zip(*rows))
        if return_tensors == "pt":
            lengths = sorted({len(ids) for ids in input_ids})
            if len(lengths) > 1:
                raise ValueError(f"return_tensors='pt' needs sequences of one length, got lengths {lengths[0]} to "
                                 f"{lengths[-1]}; pass padding=True (or padding='max_length' with max_length)")
            input_ids, token_type_ids, attention_mask = (
                torch.tensor(column, dtype=torch.long)  # (batch, seq)
                for column in (input_ids, token_type_ids, attention_mask))
        elif not batched:
            input_ids, token_type_ids, attention_mask = input_ids[0], token_type_ids[0], attention_mask[0]
        if not batched:
            offsets = offsets[0]
        return Encoding(input_ids, token_type_ids, attention_mask, offsets, self.vocab)

    def _truncation_plan(self, truncation, max_length, padding) -> tuple[str | None, int | None]:
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                       or max_length < 0):
            raise ValueError(f"max_length must be a whole number >= 0 or None, got {max_length!r}")
        if truncation is None:  # transformers: max_length alone means "cut to it"
            truncation = max_length is not None and padding is False
        if truncation is False:
            return None, max_length
        if truncation is True:
            truncation = "longest_first"
        if truncation not in TRUNCATION_STRATEGIES:
            raise ValueError(f"truncation must be False, True or one of {TRUNCATION_STRATEGIES}, got {truncation!r}")
        return truncation, self.model_max_length if max_length is None else max_length

    def _encode_row(self, first: str, second: str | None, strategy: str | None, max_length: int | None):
        a_ids, a_offsets = self._encode_text(first)
        b_ids, b_offsets = self._encode_text(second) if second is not None else ([], [])
        if strategy is not None:
            keep_a, keep_b = truncated_lengths(len(a_ids), None if second is None else len(b_ids), max_length,
                                               strategy)
            a_ids, a_offsets, b_ids, b_offsets = a_ids[:keep_a], a_offsets[:keep_a], b_ids[:keep_b], b_offsets[:keep_b]
        cls, sep, no_span = self.cls_token_id, self.sep_token_id, (0, 0)
        ids = [cls, *a_ids, sep]
        offsets = [no_span, *a_offsets, no_span]
        type_ids = [0] * len(ids)
        if second is not None:
            ids += [*b_ids, sep]
            offsets += [*b_offsets, no_span]
            type_ids += [1] * (len(b_ids) + 1)
        return ids, type_ids, [1] * len(ids), offsets

    def _pad(self, row, length: int):
        """[PAD] on the right, with token type 0, attention 0 and no span."""
        missing = length - len(row[0])
        if missing <= 0:
            return row
        ids, type_ids, attention_mask, offsets = row
        return (ids + [self.pad_token_id] * missing, type_ids + [0] * missing, attention_mask + [0] * missing,
                offsets + [(0, 0)] * missing)


def truncated_lengths(len_a: int, len_b: int | None, max_length: int, strategy: str) -> tuple[int, int]:
    """How many tokens of a and of b to keep so that, with [CLS] and the [SEP]s, at most max_length remain.

    The arithmetic of Hugging Face tokenizers. "longest_first" with a pair keeps the shorter one whole if
    cutting the longer one is enough, and otherwise gives each half of the room (the longer one, or b on a
    tie, gets the odd token). "only_first" / "only_second" refuse to cut a sequence down to nothing.
    """
    specials = 2 if len_b is None else 3
    room = max_length - specials
    if room < 0:
        layout = "[CLS] a [SEP]" if len_b is None else "[CLS] a [SEP] b [SEP]"
        raise ValueError(f"max_length={max_length} leaves no room for the {specials} special tokens of {layout}; "
                         f"pass max_length >= {specials}")
    if room == 0:
        return 0, 0  # the reference empties both sequences here, whatever the strategy
    to_remove = len_a + (len_b or 0) - room
    if to_remove <= 0:
        return len_a, len_b or 0
    if strategy == "longest_first":
        if len_b is None:
            return room, 0
        shorter, longer = sorted((len_a, len_b))
        keep_longer = shorter if shorter > room else max(shorter, room - shorter)
        keep_shorter = shorter
        if keep_shorter + keep_longer > room:  # cutting the longer one is not enough: both give
            keep_shorter = room // 2
            keep_longer = keep_shorter + room % 2
        return (keep_longer, keep_shorter) if len_a > len_b else (keep_shorter, keep_longer)
    if strategy == "only_second" and len_b is None:
        raise ValueError(f"truncation='only_second' needs a pair (text, text_pair), but got one text of {len_a} "
                         f"tokens for max_length={max_length}; use truncation='longest_first' or 'only_first'")
    which, length = ("first", len_a) if strategy == "only_first" else ("second", len_b)
    if length <= to_remove:
        raise ValueError(f"truncation={strategy!r} must remove {to_remove} tokens to fit max_length={max_length}, "
                         f"but the {which} text has only {length}; raise max_length or use truncation='longest_first'")
    return (len_a - to_remove, len_b or 0) if strategy == "only_first" else (len_a, len_b - to_remove)


def _padding_plan(padding, max_length) -> int | str | None:
    """None (no padding), "longest", or the length to pad to."""
    if padding is False:
        return None
    if padding is True or padding == "longest":  # the longest sequence of the batch
        return "longest"
    if padding == "max_length":
        if max_length is None:
            raise ValueError("padding='max_length' needs max_length=...; or use padding=True to pad to the longest")
        return max_length
    raise ValueError(f"padding must be False, True or one of {PADDING_STRATEGIES}, got {padding!r}")


def _as_batch(text, text_pair) -> tuple[list[str], list[str | None], bool]:
    """Firsts, seconds (None for single texts), and whether the input was a batch."""
    if isinstance(text, str):
        if text_pair is not None and not isinstance(text_pair, str):
            raise TypeError(f"text is one str, so text_pair must be a str or None, got {type(text_pair).__name__}; "
                            f"for a batch pass two lists of str")
        return [text], [text_pair], False
    if not isinstance(text, (list, tuple)):
        raise TypeError(f"expected a str, a list of str, or a list of (str, str) pairs; got {type(text).__name__}")
    texts = list(text)
    if not texts:
        raise ValueError("got an empty batch; pass at least one text")
    if text_pair is None and texts and all(isinstance(item, (tuple, list)) for item in texts):
        if not all(len(item) == 2 and all(isinstance(part, str) for part in item) for item in texts):
            raise TypeError("a batch of pairs must hold (str, str) tuples, e.g. [(question, context), ...]")
        return [a for a, _ in texts], [b for _, b in texts], True
    bad = next((item for item in texts if not isinstance(item, str)), None)
    if bad is not None:
        raise TypeError(f"a batch must be a list of str (or of (str, str) pairs), found a {type(bad).__name__}")
    if text_pair is None:
        return texts, [None] * len(texts), True
    if not isinstance(text_pair, (list, tuple)) or not all(isinstance(item, str) for item in text_pair):
        raise TypeError("text is a list, so text_pair must be a list of str of the same length")
    if len(text_pair) != len(texts):
        raise ValueError(f"text has {len(texts)} texts but text_pair has {len(text_pair)}; they must pair up")
    return texts, list(text_pair), True


def _read_vocab(path: Path) -> list[str]:
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; pass its vocab.txt, or use WordPieceTokenizer.from_pretrained")
    if not path.is_file():
        raise FileNotFoundError(f"no vocab file at {path}; expected a BERT vocab.txt (one token per line), e.g. "
                                f"from a checkpoint folder, or one written by train_wordpiece + write_vocab")
    try:
        return read_vocab(path)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error}); a vocab.txt has one UTF-8 token per line") from error


def _check_vocab(vocab: list[str], source: str) -> dict[str, int]:
    """The token -> id map, after checking that the vocabulary can be used by BERT."""
    if not vocab:
        raise ValueError(f"{source} is empty; a BERT vocab lists one token per line, starting with the "
                         f"special tokens {' '.join(SPECIAL_TOKENS)}")
    token_to_id: dict[str, int] = {}
    for i, token in enumerate(vocab):
        if not isinstance(token, str) or not token or "\n" in token:
            raise ValueError(f"{source}: token {i} (line {i + 1}) is {token!r}; every token must be a non-empty "
                             f"str without a line break")
        if token in token_to_id:
            raise ValueError(f"{source}: line {i + 1} repeats {token!r} (already on line {token_to_id[token] + 1});"
                             f" each token must appear once, its line number is its id")
        token_to_id[token] = i
    missing = [token for token in SPECIAL_TOKENS if token not in token_to_id]
    if missing:
        raise ValueError(f"{source} lacks the special tokens {' '.join(missing)}; BERT needs all of "
                         f"{' '.join(SPECIAL_TOKENS)} (train_wordpiece puts them first)")
    return token_to_id
