"""The tokenizer on examples worked out by hand: words, WordPiece pieces, pairs, truncation, padding, decoding.

Lecture 1.1 (contextualized word embeddings) and 2.1 (inputs); run with `pytest -m embeddings`.
"""
import json
import unicodedata

import pytest
import torch

from minibert.tokenizer import Encoding, WordPieceTokenizer
from minibert.tokenizer.pretokenize import BasicTokenizer
from minibert.tokenizer.wordpiece import truncated_lengths

pytestmark = pytest.mark.embeddings

# A toy vocabulary: the line number is the id. The first rows are Google BERT's own tokenizer test.
TOY_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",                      # 0-4
    "want", "##want", "##ed", "wa", "un", "runn", "##ing", ",", "low", "lowest",  # 5-14
    "una", "##ffa", "##ble", "##aff", "##able",                         # 15-19
    "hello", "world", "!", "今", "天", "氣", "很", "好", "cafe", "naive",  # 20-29
    "how", "are", "you", "?", ".",                                      # 30-34
]
ID = {token: i for i, token in enumerate(TOY_VOCAB)}
CLS, SEP, PAD = ID["[CLS]"], ID["[SEP]"], ID["[PAD]"]


@pytest.fixture(scope="module")
def toy():
    return WordPieceTokenizer(TOY_VOCAB)


@pytest.fixture(scope="module")
def toy_cased():
    return WordPieceTokenizer(TOY_VOCAB, lowercase=False)


@pytest.mark.parametrize("text, tokens", [
    ("unwanted running", ["un", "##want", "##ed", "runn", "##ing"]),
    ("UNwant\u00e9d,running", ["un", "##want", "##ed", ",", "runn", "##ing"]),
    ("unwantedX running", ["[UNK]", "runn", "##ing"]),  # no piece for "x": the whole word is unknown
    ("unaffable", ["una", "##ffa", "##ble"]),  # greedy: the longest first piece wins, not "un ##aff ##able"
    ("lowest low", ["lowest", "low"]),
    ("今天天氣很好", ["今", "天", "天", "氣", "很", "好"]),  # every CJK ideograph is a word
    ("Café NAÏVE", ["cafe", "naive"]),  # lower-cased and accents stripped
    ("hel\x00lo\u200b wor\x07ld\ufffd", ["hello", "world"]),  # NUL, zero-width space, bell, U+FFFD dropped
    ("hello\x0bworld", ["[UNK]"]),  # a vertical tab is a control character, dropped, not a space
    ("hello\tworld\u00a0!\u3000how\nare\r\nyou", ["hello", "world", "!", "how", "are", "you"]),
    ("hello[CLS]world [SEP] [MASK]", ["hello", "[CLS]", "world", "[SEP]", "[MASK]"]),  # kept whole
    ("want" * 25, ["want"] + ["##want"] * 24),  # 100 characters: still split
    ("want" * 26, ["[UNK]"]),  # 104 characters: longer than BERT's 100
    ("", []),
])
def test_tokenize_hand_derived(toy, text, tokens):
    assert toy.tokenize(text) == tokens


@pytest.mark.parametrize("text, tokens", [
    ("Hello world", ["[UNK]", "world"]),  # the toy vocab has only "hello"
    ("café cafe", ["[UNK]", "cafe"]),  # the accent stays
    ("[cls] [CLS]", ["[UNK]", "[UNK]", "[UNK]", "[CLS]"]),  # "[", "cls", "]", then the special token
])
def test_tokenize_cased(toy_cased, text, tokens):
    assert toy_cased.tokenize(text) == tokens


@pytest.mark.parametrize("text, lowercase, words", [
    ("Héllo, wörld!", True, [("hello", 0, 5), (",", 5, 6), ("world", 7, 12), ("!", 12, 13)]),
    ("Héllo", False, [("Héllo", 0, 5)]),
    ("don't $5+3", True, [("don", 0, 3), ("'", 3, 4), ("t", 4, 5), ("$", 6, 7), ("5", 7, 8), ("+", 8, 9),
                          ("3", 9, 10)]),  # ASCII symbols count as punctuation
    ("a–b a©b", True, [("a", 0, 1), ("–", 1, 2), ("b", 2, 3), ("a©b", 4, 7)]),  # a dash splits, © does not
    ("ΟΔΟΣ", True, [("οδοσ", 0, 4)]),  # lower-cased one character at a time: no final ς
    ("e\u0301x", True, [("ex", 0, 3)]),  # a decomposed accent is dropped but stays inside the span
    ("a\x00b\u200bc\x07 d", True, [("abc", 0, 5), ("d", 7, 8)]),  # the word ends at the c
    ("[CLS]x[cls]", True, [("[CLS]", 0, 5), ("x", 5, 6), ("[", 6, 7), ("cls", 7, 10), ("]", 10, 11)]),
    ("好x好", True, [("好", 0, 1), ("x", 1, 2), ("好", 2, 3)]),
    ("한국", True, [(unicodedata.normalize("NFD", "한국"), 0, 2)]),  # Hangul: not CJK ideographs, decomposed
    (" \t\n ", True, []),
])
def test_basic_tokenizer_words_and_offsets(text, lowercase, words):
    assert BasicTokenizer(lowercase=lowercase)(text) == words


def test_encoding_of_a_pair_by_hand(toy):
    encoding = toy("Hello world!", "how are you?")
    assert encoding.input_ids == [CLS, ID["hello"], ID["world"], ID["!"], SEP, ID["how"], ID["are"], ID["you"],
                                  ID["?"], SEP]
    assert encoding.token_type_ids == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert encoding.attention_mask == [1] * 10
    assert encoding.offsets == [(0, 0), (0, 5), (6, 11), (11, 12), (0, 0), (0, 3), (4, 7), (8, 11), (11, 12), (0, 0)]
    assert encoding.tokens == ["[CLS]", "hello", "world", "!", "[SEP]", "how", "are", "you", "?", "[SEP]"]


def test_offsets_point_into_the_original_text(toy):
    text = "  UNwant\u00e9d,\u200brunning 今天"
    encoding = toy(text)
    pieces = [text[start:end] for start, end in encoding.offsets[1:-1]]
    assert pieces == ["UN", "want", "\u00e9d", ",", "runn", "ing", "今", "天"]
    assert encoding.offsets[5] == (12, 16)  # "runn" starts after the dropped zero-width space at 11


A_FIVE, B_TWO = "want want want want want", "low low"  # 5 and 2 tokens


@pytest.mark.parametrize("strategy, max_length, kept_a, kept_b", [
    ("longest_first", 7, 2, 2),  # room 4: the longer one is cut to 4 - 2
    ("longest_first", 6, 2, 1),  # room 3: both must give, the longer one keeps the odd token
    ("only_first", 7, 2, 2),
    ("only_second", 9, 5, 1),
    ("longest_first", 3, 0, 0),  # no room at all: both emptied, as in the reference
    ("only_first", 100, 5, 2),  # nothing to cut
])
def test_every_truncation_strategy(toy, strategy, max_length, kept_a, kept_b):
    encoding = toy(A_FIVE, B_TWO, truncation=strategy, max_length=max_length)
    expected = [CLS] + [ID["want"]] * kept_a + [SEP] + [ID["low"]] * kept_b + [SEP]
    assert encoding.input_ids == expected
    assert encoding.token_type_ids == [0] * (kept_a + 2) + [1] * (kept_b + 1)


def test_truncation_on_a_tie_keeps_the_odd_token_in_the_second_text(toy):
    encoding = toy("low low low", "want want want", truncation=True, max_length=6)  # room 3 for 3 + 3
    assert encoding.input_ids == [CLS, ID["low"], SEP, ID["want"], ID["want"], SEP]


@pytest.mark.parametrize("len_a, len_b, max_length, strategy, kept", [
    (10, 10, 8, "longest_first", (2, 3)),
    (12, 10, 8, "longest_first", (3, 2)),
    (1, 10, 8, "longest_first", (1, 4)),
    (10, None, 8, "longest_first", (6, 0)),
    (10, None, 8, "only_first", (6, 0)),
    (3, 4, 100, "only_second", (3, 4)),
])
def test_truncated_lengths_arithmetic(len_a, len_b, max_length, strategy, kept):
    assert truncated_lengths(len_a, len_b, max_length, strategy) == kept


def test_truncation_defaults(toy):
    five = [CLS] + [ID["want"]] * 5 + [SEP]
    assert toy(A_FIVE, truncation=True, max_length=4).input_ids == [CLS, ID["want"], ID["want"], SEP]
    assert toy(A_FIVE, max_length=4).input_ids == [CLS, ID["want"], ID["want"], SEP]  # as transformers
    assert toy(A_FIVE, max_length=4, truncation=False).input_ids == five
    assert toy(A_FIVE, max_length=4, padding=True).input_ids == five  # padding given: max_length not a cut
    assert WordPieceTokenizer(TOY_VOCAB, model_max_length=5)(A_FIVE, truncation=True).input_ids == five[:4] + [SEP]


@pytest.mark.parametrize("kwargs, message", [
    (dict(text_pair=None, truncation="only_second", max_length=4), "needs a pair"),
    (dict(text_pair=B_TWO, truncation="only_second", max_length=8), "the second text has only 2"),
    (dict(text_pair=B_TWO, truncation="only_first", max_length=4), "the first text has only 5"),
    (dict(text_pair=B_TWO, truncation=True, max_length=2), "max_length >= 3"),
    (dict(truncation="sideways"), "truncation must be"),
    (dict(padding="yes"), "padding must be"),
    (dict(padding="max_length"), "needs max_length"),
    (dict(max_length=-1, truncation=True), "max_length must be"),
    (dict(return_tensors="np"), "return_tensors must be"),
])
def test_bad_arguments_say_what_to_do(toy, kwargs, message):
    with pytest.raises(ValueError, match=message):
        toy(A_FIVE, **kwargs)


def test_padding_right_with_pad_id_and_zero_mask(toy):
    encoding = toy(["hello world", "hello"], padding=True)
    assert encoding.input_ids == [[CLS, ID["hello"], ID["world"], SEP], [CLS, ID["hello"], SEP, PAD]]
    assert encoding.attention_mask == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert encoding.token_type_ids == [[0] * 4, [0] * 4]
    assert encoding.offsets == [[(0, 0), (0, 5), (6, 11), (0, 0)], [(0, 0), (0, 5), (0, 0), (0, 0)]]
    to_six = toy(["hello world", "hello"], padding="max_length", max_length=6)
    assert to_six.input_ids == [[CLS, ID["hello"], ID["world"], SEP, PAD, PAD], [CLS, ID["hello"], SEP, PAD, PAD, PAD]]
    assert to_six.attention_mask == [[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]]


def test_tensors_need_equal_lengths(toy):
    batch = toy(["hello world", "hello"], padding=True, return_tensors="pt")
    assert batch.input_ids.dtype == torch.long and batch.input_ids.shape == (2, 4)
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    one = toy("hello world", return_tensors="pt")
    assert one.input_ids.shape == (1, 4) and one.token_type_ids.tolist() == [[0, 0, 0, 0]]
    with pytest.raises(ValueError, match="padding=True"):
        toy(["hello world", "hello"], return_tensors="pt")


def test_batch_forms_agree(toy):
    pairs = [("hello", "how are you"), ("want", "low")]
    as_tuples = toy(pairs)
    as_lists = toy([a for a, _ in pairs], [b for _, b in pairs])
    one_by_one = [toy(a, b) for a, b in pairs]
    assert as_tuples == as_lists
    assert as_tuples.input_ids == [e.input_ids for e in one_by_one]
    assert as_tuples.offsets == [e.offsets for e in one_by_one]
    assert isinstance(as_tuples, Encoding)


@pytest.mark.parametrize("text, text_pair, error", [
    (["a", "b"], ["c"], ValueError),
    ("a", ["b"], TypeError),
    ([1, 2], None, TypeError),
    (3, None, TypeError),
    ([], None, ValueError),
])
def test_bad_batches(toy, text, text_pair, error):
    with pytest.raises(error):
        toy(text, text_pair)


def test_decode_joins_pieces_and_cleans_spaces(toy):
    ids = [CLS, ID["un"], ID["##want"], ID["##ed"], ID[","], ID["runn"], ID["##ing"], ID["!"], SEP, PAD]
    assert toy.decode(ids) == "unwanted, running!"
    assert toy.decode(ids, skip_special_tokens=False) == "[CLS] unwanted, running! [SEP] [PAD]"
    assert toy.decode(torch.tensor(ids)) == "unwanted, running!"
    assert toy.decode(toy("How are you ?").input_ids) == "how are you?"


def test_vocabulary_lookups(toy):
    assert (toy.vocab_size, len(toy)) == (len(TOY_VOCAB), len(TOY_VOCAB))
    special_ids = (toy.pad_token_id, toy.unk_token_id, toy.cls_token_id, toy.sep_token_id, toy.mask_token_id)
    assert special_ids == (0, 1, 2, 3, 4)
    assert toy.convert_tokens_to_ids(["want", "nope"]) == [5, 1]
    assert toy.convert_tokens_to_ids("##ed") == 7
    assert toy.convert_ids_to_tokens([9, 6]) == ["un", "##want"]
    with pytest.raises(IndexError, match="outside the vocabulary"):
        toy.convert_ids_to_tokens(len(TOY_VOCAB))


def test_vocab_file_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no vocab file"):
        WordPieceTokenizer.from_file(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="is empty"):
        WordPieceTokenizer.from_file(empty)
    repeated = tmp_path / "repeated.txt"
    repeated.write_text("\n".join(TOY_VOCAB + ["want"]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="repeats 'want'"):
        WordPieceTokenizer.from_file(repeated)
    blank = tmp_path / "blank.txt"
    blank.write_text("\n".join(TOY_VOCAB[:6] + [""] + TOY_VOCAB[6:]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 7"):
        WordPieceTokenizer.from_file(blank)
    no_specials = tmp_path / "no_specials.txt"
    no_specials.write_text("\n".join(t for t in TOY_VOCAB if t not in ("[MASK]", "[SEP]")), encoding="utf-8")
    with pytest.raises(ValueError, match=r"lacks the special tokens \[SEP\] \[MASK\]"):
        WordPieceTokenizer.from_file(no_specials)
    with pytest.raises(IsADirectoryError, match="from_pretrained"):
        WordPieceTokenizer.from_file(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        WordPieceTokenizer.from_pretrained(tmp_path / "nowhere")


def test_from_pretrained_reads_the_config(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(TOY_VOCAB) + "\n", encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False, "model_max_length": 7}))
    tokenizer = WordPieceTokenizer.from_pretrained(tmp_path)
    assert tokenizer.tokenize("Hello hello") == ["[UNK]", "hello"]
    assert tokenizer.model_max_length == 7
    (tmp_path / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        WordPieceTokenizer.from_pretrained(tmp_path)


def test_save_refuses_to_overwrite(toy, tmp_path):
    toy.save_pretrained(tmp_path / "saved")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        toy.save_pretrained(tmp_path / "saved")
    toy.save_pretrained(tmp_path / "saved", overwrite=True)
    assert WordPieceTokenizer.from_pretrained(tmp_path / "saved").vocab == TOY_VOCAB
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["tokenizer_config.json", "vocab.txt"]
