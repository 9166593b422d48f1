"""The plain tokenizer of basic.py: worked out by hand on the real MiniLM vocabulary, and equal to the full one.

Lecture 1.1 ("From text to token ids: WordPiece") and 2.1 (inputs); run with `pytest -m embeddings`.
"""
from pathlib import Path

import pytest

from minibert.tokenizer import BasicWordPieceTokenizer, WordPieceTokenizer, basic, wordpiece
from minibert.tokenizer.basic import SPECIAL_TOKENS, greedy_longest_match, normalize, split_words
from test_tokenizer_parity import corpus

pytestmark = pytest.mark.embeddings


@pytest.fixture(scope="module")
def vocab_path(checkpoint_dir):
    return Path(checkpoint_dir) / "vocab.txt"


@pytest.fixture(scope="module")
def plain(vocab_path):
    return BasicWordPieceTokenizer.from_file(vocab_path)


@pytest.fixture(scope="module")
def full(vocab_path):
    return WordPieceTokenizer.from_file(vocab_path)


def test_loads_the_vocab_by_line_number(plain):
    assert len(plain.vocab) == 30522
    assert [plain.token_to_id[token] for token in SPECIAL_TOKENS] == [0, 100, 101, 102, 103]


def test_normalize_and_split_words():
    assert normalize("Café NAÏVE") == "cafe naive"  # é = e + U+0301 after NFD; the mark goes
    assert split_words("hello,  world!\tIt's $3.50") == ["hello", ",", "world", "!", "It", "'", "s", "$", "3", ".",
                                                        "50"]


# Every candidate tried, longest first, looked up in the MiniLM vocab.txt (id, or "no"):
#   "unaffable":  unaffable, unaffabl, unaffab, unaffa, unaff, unaf: no;  una: 14477
#   rest "ffable": ##ffable, ##ffabl, ##ffab: no;  ##ffa: 20961
#   rest "ble":   ##ble: 3468
#   "embeddings": embeddings ... emb: no;  em: 7861;  ##beddings ... ##bedd: no;  ##bed: 8270;
#                 ##dings: no;  ##ding: 4667;  ##s: 2015
HAND_DERIVED = [
    ("unaffable", ["una", "##ffa", "##ble"], [14477, 20961, 3468]),
    ("embeddings", ["em", "##bed", "##ding", "##s"], [7861, 8270, 4667, 2015]),
]


@pytest.mark.parametrize("word, pieces, ids", HAND_DERIVED)
def test_greedy_longest_match_by_hand(plain, word, pieces, ids):
    assert greedy_longest_match(word, plain.token_to_id) == pieces
    assert plain.encode(word).input_ids == [101, *ids, 102]


def shortest_first(word, vocab):
    """A wrong WordPiece, to show that the test above tells it apart: the shortest piece that matches."""
    pieces, start = [], 0
    while start < len(word):
        end = next(end for end in range(start + 1, len(word) + 1)
                   if (word[start:end] if start == 0 else "##" + word[start:end]) in vocab)
        pieces.append(word[start:end] if start == 0 else "##" + word[start:end])
        start = end
    return pieces


def test_the_hand_derived_pieces_catch_a_shortest_first_match_and_a_missing_continuation_mark(plain):
    """If greedy_longest_match took the shortest piece, or forgot "##", test_greedy_longest_match_by_hand fails."""
    vocab = plain.token_to_id
    assert shortest_first("unaffable", vocab) == ["u", "##n", "##a", "##f", "##f", "##a", "##b", "##l", "##e"]
    without_marks = {token.removeprefix("##") for token in vocab}  # every piece may now start or continue
    assert greedy_longest_match("unaffable", without_marks) != ["una", "##ffa", "##ble"]
    # and the "##" matters on its own: "ffa" and "ble" cannot start a word
    assert "ffa" not in vocab and "ble" not in vocab and "##ffa" in vocab and "##ble" in vocab


def test_a_word_longer_than_the_limit_or_without_pieces_is_unk(plain, full):
    assert "[UNK]" not in plain.tokenize("a" * 100)
    assert plain.tokenize("a" * 101) == ["[UNK]"]  # longer than max_input_chars_per_word = 100
    assert plain.tokenize("snowman\u2603 ok") == ["[UNK]", "ok"]  # no piece holds the snowman: the whole word
    assert greedy_longest_match("abcd", {"ab", "##c", "##cd"}, max_chars=3) == ["[UNK]"]
    assert greedy_longest_match("abc", {"ab", "##c", "##cd"}, max_chars=3) == ["ab", "##c"]
    for text in ["a" * 100, "a" * 101, "snowman\u2603 ok"]:
        assert plain.encode(text).input_ids == full(text).input_ids


def test_special_tokens_and_segments(plain):
    one = plain.encode("Hello, world!")
    assert one.input_ids == [101, 7592, 1010, 2088, 999, 102]  # [CLS] hello , world ! [SEP]
    assert one.token_type_ids == [0] * 6
    pair = plain.encode("Hello, world!", "Is it?")
    assert pair.input_ids == [101, 7592, 1010, 2088, 999, 102, 2003, 2009, 1029, 102]  # ... [SEP] is it ? [SEP]
    assert pair.token_type_ids == [0] * 6 + [1] * 4


def test_the_full_tokenizer_calls_the_same_greedy_match():
    assert wordpiece.greedy_longest_match is basic.greedy_longest_match


@pytest.mark.parametrize("name", ["wikitext-2/valid", "wikitext-2/test", "glue-sst2/train", "glue-sst2/dev"])
def test_equals_the_full_tokenizer_on_every_line_of_english_corpora(plain, full, data_dir, name):
    """basic.py claims plain ASCII English, about 9 lines in 10 here; the others (accented names, dashes, no CJK
    and no control characters) come out right too. The full tokenizer equals BertTokenizerFast on all of them
    (test_tokenizer_parity.py), so basic.py does."""
    lines = corpus(data_dir, name)
    assert sum(line.isascii() for line in lines) > 0.85 * len(lines)
    expected = full(lines).input_ids
    for line, ids in zip(lines, expected):
        assert plain.encode(line).input_ids == ids, line
    pairs = full(lines[:-1:7], lines[1::7])  # pairs of neighbouring lines: segments too
    for a, b, ids, types in zip(lines[:-1:7], lines[1::7], pairs.input_ids, pairs.token_type_ids):
        encoding = plain.encode(a, b)
        assert (encoding.input_ids, encoding.token_type_ids) == (ids, types), (a, b)


@pytest.mark.parametrize("text, plain_tokens, full_tokens", [
    ("今天", ["[UNK]"], ["[UNK]", "天"]),  # the full one splits every Chinese character off
    ("he\u200bllo", ["[UNK]"], ["hello"]),  # the full one drops the zero-width space (a format character)
    ("a [MASK] b", ["a", "[", "mask", "]", "b"], ["a", "[MASK]", "b"]),  # special tokens written in the text
])
def test_what_basic_leaves_out(plain, full, text, plain_tokens, full_tokens):
    """The differences its docstring lists, each shown once."""
    assert (plain.tokenize(text), full.tokenize(text)) == (plain_tokens, full_tokens)
