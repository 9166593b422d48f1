"""Properties that must hold for any text: hypothesis throws arbitrary Unicode at the tokenizer.

Lecture 1.1; run with `pytest -m embeddings`.
"""
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minibert.tokenizer import WordPieceTokenizer
from minibert.tokenizer.pretokenize import SPECIAL_TOKENS

pytestmark = pytest.mark.embeddings
SETTINGS = settings(max_examples=200, deadline=None, database=None)  # tests write nothing to the work tree

# Arbitrary Unicode, and Unicode biased toward what is hard: CJK, accents and combining marks, controls and
# format characters, unusual spaces, Hangul, special tokens.
HARD_PARTS = st.one_of(
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), st.characters(min_codepoint=0x300, max_codepoint=0x36F),
    st.characters(min_codepoint=0xC0, max_codepoint=0x17F), st.characters(min_codepoint=0, max_codepoint=0x9F),
    st.sampled_from("\u200b\u200d\ufeff\u00a0\u2028\u3000\ufffd\ue000\u0130\u03a3\u1fef"),
    st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3), st.sampled_from(SPECIAL_TOKENS),
)
ANY_TEXT = st.one_of(st.text(), st.lists(HARD_PARTS, max_size=40).map("".join))


@pytest.fixture(scope="module", params=[True, False], ids=["uncased", "cased"])
def tokenizer(request, checkpoint_dir):
    return WordPieceTokenizer.from_file(Path(checkpoint_dir) / "vocab.txt", lowercase=request.param)


@pytest.fixture(scope="module")
def uncased_tokenizer(checkpoint_dir):
    return WordPieceTokenizer.from_file(Path(checkpoint_dir) / "vocab.txt")


@SETTINGS
@given(text=ANY_TEXT)
def test_any_text_gives_a_well_formed_encoding(tokenizer, text):
    encoding = tokenizer(text)
    n = len(encoding.input_ids)
    assert n >= 2 and len(encoding.token_type_ids) == len(encoding.attention_mask) == len(encoding.offsets) == n
    assert encoding.input_ids[0] == tokenizer.cls_token_id and encoding.input_ids[-1] == tokenizer.sep_token_id
    assert all(0 <= token_id < tokenizer.vocab_size for token_id in encoding.input_ids)
    assert encoding.token_type_ids == [0] * n and encoding.attention_mask == [1] * n


@SETTINGS
@given(text=ANY_TEXT)
def test_offsets_stay_inside_the_text_and_never_go_back(tokenizer, text):
    spans = tokenizer(text).offsets[1:-1]
    assert all(0 <= start < end <= len(text) for start, end in spans)
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(spans, spans[1:]))


@SETTINGS
@given(text=ANY_TEXT)
def test_each_token_is_made_of_the_characters_its_span_points_to(tokenizer, text):
    """Normalising text[start:end] gives the token's characters; several tokens can share one character
    (a Hangul syllable decomposes into letters), and then the token is only part of it."""
    encoding = tokenizer(text)
    tokens, spans = encoding.tokens[1:-1], encoding.offsets[1:-1]
    for i, (token, (start, end)) in enumerate(zip(tokens, spans)):
        if token in SPECIAL_TOKENS:
            assert token == "[UNK]" or text[start:end] == token  # [CLS] written in the text
            continue
        piece = token.removeprefix("##")
        normalised = "".join(word for word, _, _ in tokenizer.basic(text[start:end]))
        shares_a_character = (i > 0 and spans[i - 1][1] > start) or (i + 1 < len(spans) and spans[i + 1][0] < end)
        if shares_a_character:
            assert piece in normalised
        else:
            assert normalised == piece


@SETTINGS
@given(first=ANY_TEXT, second=ANY_TEXT)
def test_a_pair_is_both_encodings_joined(tokenizer, first, second):
    pair, a, b = tokenizer(first, second), tokenizer(first), tokenizer(second)
    assert pair.input_ids == a.input_ids + b.input_ids[1:]
    assert pair.offsets == a.offsets + b.offsets[1:]
    assert pair.token_type_ids == [0] * len(a.input_ids) + [1] * (len(b.input_ids) - 1)
    assert tokenizer([first, second]).input_ids == [a.input_ids, b.input_ids]


WORD = st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True)
PUNCTUATION = st.sampled_from(string.punctuation)
SEPARATOR = st.sampled_from(["", " ", "  ", "\t", "\n ", " \r\n"])
CLEAN_ASCII = st.lists(st.tuples(st.one_of(WORD, PUNCTUATION), SEPARATOR), max_size=8).map(
    lambda parts: "".join(part + separator for part, separator in parts))


@SETTINGS
@given(text=CLEAN_ASCII)
def test_decoding_gives_back_the_lowercased_text(uncased_tokenizer, text):
    """Up to whitespace, which decoding normalises (one space between words, none before . , ! ?)."""
    tokenizer = uncased_tokenizer
    ids = tokenizer(text).input_ids
    assert tokenizer.unk_token_id not in ids
    decoded = tokenizer.decode(ids)
    assert "".join(decoded.split()) == "".join(text.lower().split())
    assert tokenizer(decoded).input_ids == ids

