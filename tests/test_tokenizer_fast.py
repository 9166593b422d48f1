"""The tokenizer's fast path (fast.py: ASCII shortcuts, the word cache, the paused cycle collector) equals the
plain path, id for id and offset for offset.

Lecture 1.1 ("Readable and fast"); run with `pytest -m embeddings`. The plain path alone is also compared with
transformers on a sample of every shared corpus (tests/test_tokenizer_parity.py), and the fast one on all of it.
"""
import gc
from pathlib import Path

import pytest
from hypothesis import given, settings

from minibert.tokenizer import WordPieceTokenizer
from minibert.tokenizer import fast
from minibert.tokenizer.fast import FastBasicTokenizer
from minibert.tokenizer.pretokenize import BasicTokenizer
from test_tokenizer import TOY_VOCAB
from test_tokenizer_parity import TRICKY_TEXT
from test_tokenizer_properties import ANY_TEXT

pytestmark = pytest.mark.embeddings
SETTINGS = settings(max_examples=300, deadline=None, database=None)


@pytest.fixture(scope="module", params=[True, False], ids=["uncased", "cased"])
def fast_and_plain(request, checkpoint_dir):
    vocab = Path(checkpoint_dir) / "vocab.txt"
    return (WordPieceTokenizer.from_file(vocab, lowercase=request.param),
            WordPieceTokenizer.from_file(vocab, lowercase=request.param, use_fast=False))


def test_the_switch_picks_the_path(fast_and_plain):
    quick, plain = fast_and_plain
    assert quick.use_fast and isinstance(quick.basic, FastBasicTokenizer) and quick._cache is not None
    assert not plain.use_fast and type(plain.basic) is BasicTokenizer and plain._cache is None


@SETTINGS
@given(text=ANY_TEXT, second=TRICKY_TEXT)
def test_fast_path_equals_the_plain_path_on_any_text(fast_and_plain, text, second):
    quick, plain = fast_and_plain
    for texts in ([text], [second], [text + " " + second]):  # the cache sees each word again and again
        assert quick(texts, texts) == plain(texts, texts)
    assert quick.basic(text) == plain.basic(text)


# Each shortcut of FastBasicTokenizer on the cases where it must give way to the plain path.
ASCII_EDGES = ["plain words, and punctuation!", "hello\x0bworld", "bell\x07 and nul\x00", "tab\tand\r\nnewline",
               "[CLS]glued[SEP] [MASK]", "$3.50 + <unk> = `x`", "mixed café ascii", "\x7f\x1f", ""]


@pytest.mark.parametrize("text", ASCII_EDGES)
def test_ascii_shortcuts_give_the_plain_words(text):
    for lowercase in (True, False):
        assert FastBasicTokenizer(lowercase=lowercase)(text) == BasicTokenizer(lowercase=lowercase)(text)


def test_a_full_cache_starts_over_without_changing_results(monkeypatch):
    text = "unwanted running, lowest low 今天 Café"
    expected = WordPieceTokenizer(TOY_VOCAB, use_fast=False)(text)
    monkeypatch.setattr(fast, "CACHE_SIZE", 2)
    small = WordPieceTokenizer(TOY_VOCAB)
    assert small(text) == expected and small(text) == expected
    assert 0 < len(small._cache.words) <= 2


def test_a_batch_runs_with_the_cycle_collector_paused_and_leaves_it_as_it_was():
    """Encoding a batch starts no garbage collection while it runs (each would walk the offset tuples made so
    far: about half the time of a large batch), and the collector is on or off afterwards as it was before."""
    toy = WordPieceTokenizer(TOY_VOCAB)
    collections = []

    def count(phase, info):
        if phase == "start":
            collections.append(info["generation"])

    texts = ["the unaffable runner ran"] * 20_000  # some 300,000 new lists and tuples: hundreds of collections
    gc.callbacks.append(count)
    try:
        toy(texts)
    finally:
        gc.callbacks.remove(count)
    # at most one: the first allocation after the collector is back may start one (without the pause: hundreds)
    assert len(collections) <= 1 and gc.isenabled()
    gc.disable()
    try:
        toy(texts[:10])
        assert not gc.isenabled()  # a caller who turned it off keeps it off
    finally:
        gc.enable()
