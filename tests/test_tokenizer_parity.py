"""Our tokenizer against transformers' BertTokenizerFast, on every line of the shared corpora, cased and uncased.

Lecture 1.1; run with `pytest -m embeddings`. Not one id, token type or offset may differ.
"""
import json
from functools import cache
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minibert.tokenizer import WordPieceTokenizer

pytestmark = pytest.mark.embeddings


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")  # not splitlines(): keep \x0b \x0c \x85 \u2028 in the text


def tsv_column(path: Path, column: int, header: bool = True) -> list[str]:
    rows = lines(path)[1:] if header else lines(path)
    return [row.split("\t")[column] for row in rows if row]


def squad_paragraphs(path: Path):
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        yield from article["paragraphs"]


def squad_texts(path: Path) -> list[str]:
    """Every context and every question of a SQuAD-format file."""
    return [text for paragraph in squad_paragraphs(path)
            for text in [paragraph["context"]] + [qa["question"] for qa in paragraph["qas"]]]


def squad_pairs(path: Path) -> list[tuple[str, str]]:
    """(question, context) for every question, the input of extractive QA."""
    return [(qa["question"], paragraph["context"]) for paragraph in squad_paragraphs(path) for qa in paragraph["qas"]]


def files(folder: Path, pattern: str) -> list[str]:
    return [line for path in sorted(folder.glob(pattern)) for line in lines(path)]


CORPORA = {
    "wikitext-2/valid": lambda d: lines(d / "wikitext-2" / "valid.txt"),
    "wikitext-2/test": lambda d: lines(d / "wikitext-2" / "test.txt"),
    "tinyshakespeare": lambda d: lines(d / "tinyshakespeare" / "input.txt"),
    "gutenberg-books": lambda d: files(d / "gutenberg-books", "*.txt"),
    "glue-sst2/train": lambda d: tsv_column(d / "glue-sst2" / "train.tsv", 0),
    "glue-sst2/dev": lambda d: tsv_column(d / "glue-sst2" / "dev.tsv", 0),
    "xquad.en": lambda d: squad_texts(d / "xquad-squad11-dev-subset" / "xquad.en.json"),
    "xquad.zh": lambda d: squad_texts(d / "xquad-squad11-dev-subset" / "xquad.zh.json"),
    "drcd/dev": lambda d: squad_texts(d / "drcd" / "DRCD_dev.json"),
    "drcd/test": lambda d: squad_texts(d / "drcd" / "DRCD_test.json"),
    "multi30k.de": lambda d: files(d / "multi30k" / "raw", "*.de"),
    "multi30k.fr": lambda d: files(d / "multi30k" / "raw", "*.fr"),
    "multi30k.cs": lambda d: files(d / "multi30k" / "raw", "*.cs"),
    "tatoeba-cmn": lambda d: tsv_column(d / "tatoeba-cmn-eng" / "cmn.txt", 1, header=False),
}
QA_SETS = {
    "xquad.en": lambda d: squad_pairs(d / "xquad-squad11-dev-subset" / "xquad.en.json"),
    "xquad.zh": lambda d: squad_pairs(d / "xquad-squad11-dev-subset" / "xquad.zh.json"),
    "drcd/dev": lambda d: squad_pairs(d / "drcd" / "DRCD_dev.json"),
}
CASES = pytest.mark.parametrize("lowercase", [True, False], ids=["uncased", "cased"])


@cache
def corpus(data_dir: Path, name: str) -> list[str]:
    return CORPORA[name](data_dir)


def reference_tokenizer(transformers, vocab: list[str], vocab_path: Path, lowercase: bool):
    """BertTokenizerFast(vocab_file=...). transformers 5 ignores vocab_file in the constructor and silently
    builds a 5-token vocabulary, so we then hand it the vocabulary itself."""
    reference = transformers.BertTokenizerFast(vocab_file=str(vocab_path), do_lower_case=lowercase)
    if reference.vocab_size != len(vocab):
        reference = transformers.BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)},
                                                   do_lower_case=lowercase)
    assert reference.vocab_size == len(vocab)
    return reference


@pytest.fixture(scope="module", params=[True, False], ids=["uncased", "cased"])
def both(request, checkpoint_dir, transformers_lib):
    """(ours, reference) in lower-cased or cased mode."""
    vocab_path = Path(checkpoint_dir) / "vocab.txt"
    ours = WordPieceTokenizer.from_file(vocab_path, lowercase=request.param)
    return ours, reference_tokenizer(transformers_lib, ours.vocab, vocab_path, request.param)


def assert_same_encodings(texts, ours, theirs, tokenizer, what: str) -> None:
    """Compare whole batches at once; on a difference, show the first line that differs, both ways."""
    assert len(ours.input_ids) == len(texts)
    fields = [("input_ids", theirs["input_ids"]), ("token_type_ids", theirs["token_type_ids"]),
              ("offsets", theirs["offset_mapping"]), ("attention_mask", theirs["attention_mask"])]
    for field, expected in fields:
        mine = getattr(ours, field)
        if mine == expected:
            continue
        if field == "offsets":  # some transformers versions give lists instead of tuples
            expected = [[tuple(span) for span in row] for row in expected]
            if mine == expected:
                continue
        line = next(i for i, (a, b) in enumerate(zip(mine, expected)) if a != b)
        ours_view = list(zip(tokenizer.convert_ids_to_tokens(ours.input_ids[line]), ours.offsets[line]))
        their_view = list(zip(tokenizer.convert_ids_to_tokens(theirs["input_ids"][line]),
                              [tuple(span) for span in theirs["offset_mapping"][line]]))
        pytest.fail(f"{what}: line {line} differs in {field}\n  text: {texts[line]!r}\n"
                    f"  ours:      {ours_view}\n  reference: {their_view}")


@pytest.mark.parametrize("name", list(CORPORA))
def test_every_line_matches_the_reference(both, data_dir, name):
    ours, reference = both
    texts = corpus(data_dir, name)
    assert len(texts) > 100, f"{name} looks truncated: {len(texts)} lines"
    theirs = reference(texts, add_special_tokens=True, return_offsets_mapping=True)
    assert_same_encodings(texts, ours(texts), theirs, ours, name)
    sample = theirs["input_ids"][::50]  # decoding is slow in the reference: a sample
    for ids in sample:
        assert ours.decode(ids) == reference.decode(ids, skip_special_tokens=True)
    assert ours.decode(sample[1], skip_special_tokens=False) == reference.decode(sample[1])


@pytest.mark.parametrize("name", list(CORPORA))
def test_the_plain_path_alone_matches_the_reference(both, data_dir, name):
    """use_fast=False (no cache, no ASCII shortcut: see fast.py) on every 20th line: the plain path is exact too."""
    ours, reference = both
    plain = WordPieceTokenizer(ours.vocab, lowercase=ours.lowercase, use_fast=False)
    texts = corpus(data_dir, name)[::20]
    theirs = reference(texts, add_special_tokens=True, return_offsets_mapping=True)
    assert_same_encodings(texts, plain(texts), theirs, plain, f"{name}, plain path")


@pytest.mark.parametrize("name, strategy", [(name, "only_second") for name in QA_SETS]
                         + [("xquad.en", "only_first"), ("xquad.zh", "only_first"), ("xquad.en", "longest_first")])
def test_question_context_pairs_match(both, data_dir, name, strategy):
    """Extractive QA input: [CLS] question [SEP] context [SEP], the context cut to fit 384 tokens."""
    ours, reference = both
    pairs = QA_SETS[name](data_dir)
    first, second = [q for q, _ in pairs], [c for _, c in pairs]
    if strategy == "only_first":  # then the context must come first
        first, second = second, first
    options = dict(truncation=strategy, max_length=384)
    theirs = reference(first, second, add_special_tokens=True, return_offsets_mapping=True, **options)
    assert_same_encodings(first, ours(first, second, **options), theirs, ours, f"{name} {strategy}")


def test_longest_first_on_short_pairs(both, data_dir):
    """Both sentences longer than half the room, or just one: every branch of the arithmetic, 1000 times."""
    ours, reference = both
    first = corpus(data_dir, "multi30k.de")[:1000]
    second = corpus(data_dir, "multi30k.fr")[1000:2000]
    for max_length in (8, 21, 32):
        options = dict(truncation="longest_first", max_length=max_length)
        theirs = reference(first, second, add_special_tokens=True, return_offsets_mapping=True, **options)
        assert_same_encodings(first, ours(first, second, **options), theirs, ours, f"max_length={max_length}")


def test_padded_tensors_match(both, data_dir):
    ours, reference = both
    texts = corpus(data_dir, "glue-sst2/dev")
    mine = ours(texts, padding=True, return_tensors="pt")
    theirs = reference(texts, padding=True, return_tensors="pt")
    for field in ("input_ids", "token_type_ids", "attention_mask"):
        assert torch.equal(getattr(mine, field), theirs[field]), field
    fixed = ours(texts[:8], padding="max_length", max_length=80, return_tensors="pt")
    assert torch.equal(fixed.input_ids, reference(texts[:8], padding="max_length", max_length=80,
                                                  return_tensors="pt")["input_ids"])


# Text made of what trips tokenizers up: accents and combining marks, CJK, Hangul, controls, odd spaces,
# punctuation of many scripts, private use, special tokens. (Characters added to Unicode since 2016 are left
# out: the reference's tables predate them; see minibert/tokenizer/pretokenize.py.)
TRICKY_TEXT = st.lists(st.one_of(
    *(st.characters(min_codepoint=low, max_codepoint=high) for low, high in [
        (0, 0x24F), (0x300, 0x52F), (0x1E00, 0x206F), (0x3000, 0x30FF), (0x4E00, 0x4E80), (0xAC00, 0xAC80),
        (0xE000, 0xE010), (0xF900, 0xFB4F), (0xFE00, 0xFFFF)]),
    st.sampled_from(["[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", " ", "the", "ΟΔΟΣ", "İ", "\u1fef", "e\u0301"]),
), max_size=30).map("".join)


@settings(max_examples=300, deadline=None, database=None)
@given(text=TRICKY_TEXT, second=TRICKY_TEXT)
def test_tricky_text_matches_the_reference(both, text, second):
    ours, reference = both
    mine = ours(text, second)
    # A batch of one: called with one pair, transformers drops an empty second text ("a", "" -> [CLS] a [SEP]),
    # but keeps it in a batch ([CLS] a [SEP] [SEP]). We always keep it.
    theirs = reference([text], [second], add_special_tokens=True, return_offsets_mapping=True)
    assert (mine.input_ids, mine.token_type_ids, mine.offsets) == (
        theirs["input_ids"][0], theirs["token_type_ids"][0], [tuple(span) for span in theirs["offset_mapping"][0]])


@CASES
def test_saved_tokenizer_loads_in_transformers(checkpoint_dir, data_dir, transformers_lib, tmp_path, lowercase):
    ours = WordPieceTokenizer.from_file(Path(checkpoint_dir) / "vocab.txt", lowercase=lowercase)
    ours.save_pretrained(tmp_path)
    loaded = transformers_lib.BertTokenizerFast.from_pretrained(tmp_path)
    texts = corpus(data_dir, "xquad.en")[:300] + corpus(data_dir, "drcd/dev")[:300] + ["Héllo [MASK] ΟΔΟΣ"]
    theirs = loaded(texts, add_special_tokens=True, return_offsets_mapping=True)
    assert_same_encodings(texts, ours(texts), theirs, ours, "after save_pretrained")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ours.save_pretrained(tmp_path)
