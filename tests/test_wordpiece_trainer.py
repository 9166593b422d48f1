"""Learning a WordPiece vocabulary: the first merges worked out by hand, then a tokenizer built from the result.

Lecture 1.1; run with `pytest -m embeddings`.
"""
import math
from collections import Counter
from pathlib import Path

import pytest

from minibert.tokenizer import WordPieceTokenizer, train_wordpiece
from minibert.tokenizer.pretokenize import SPECIAL_TOKENS
from minibert.tokenizer.trainer import MergeState, count_words, train_tokenizer, write_vocab

pytestmark = pytest.mark.embeddings

# hug x10, pug x5, pun x12, bun x4, hugs x5 (the Hugging Face course's example corpus)
HUG_CORPUS = ["hug " * 10, "Pug " * 5, "pun " * 12, "bun " * 4, "hugs, " * 5]
SENTENCES = [
    "The cat sat on the mat.", "The dog sat on the log.", "A cat and a dog met on the mat!",
    "Dogs and cats like mats, logs and hats.", "Is the hat on the cat? The hat is on the cat.",
    "The dog's hat sat on the log, and the cat's hat sat on the mat.",
] * 3


def test_counts_and_scores_by_hand():
    state = MergeState(count_words(HUG_CORPUS), score="pmi")
    assert state.symbol_freq == {"h": 15, "p": 17, "b": 4, "##u": 36, "##g": 20, "##n": 16, "##s": 5, ",": 5}
    assert state.pair_freq == {("h", "##u"): 15, ("##u", "##g"): 20, ("p", "##u"): 17, ("##u", "##n"): 16,
                               ("b", "##u"): 4, ("##g", "##s"): 5}
    assert state.score(("##g", "##s")) == 5 / (20 * 5)  # 1/20: "s" only ever follows "g"
    assert state.score(("##u", "##g")) == 20 / (36 * 20)  # 1/36: "u" is everywhere, so the pair is no surprise
    assert state.best_pair(min_frequency=2) == ("##g", "##s")
    assert state.best_pair(min_frequency=21) is None


def test_first_merges_by_hand():
    """With the course's ratio score ("pmi"):
    1. ##g ##s scores 1/20, every other pair 1/36.
    2. Now every pair scores 1/36 (e.g. 15/(15*36) for h ##u); the tie goes to the most frequent, p ##u (17).
    3. After it: h ##u = 15/(15*19), b ##u = 4/(4*19), ##u ##gs = 5/(19*5) tie at 1/19; h ##u (15) is the most frequent.
    """
    vocab = train_wordpiece(HUG_CORPUS, vocab_size=16, score="pmi")
    assert vocab[:5] == list(SPECIAL_TOKENS)
    assert vocab[5:13] == ["##g", "##n", "##s", "##u", ",", "b", "h", "p"]  # the characters, sorted
    assert vocab[13:] == ["##gs", "pu", "hu"]


def log_likelihood(state: MergeState) -> float:
    """sum_s f(s) log(f(s) / N), counted afresh from the words: an independent check of the gain formula."""
    counts = Counter()
    for symbols, count in zip(state.words, state.counts):
        for symbol in symbols:
            counts[symbol] += count
    n = sum(counts.values())
    return sum(f * math.log(f / n) for f in counts.values())


@pytest.mark.parametrize("pair", [("##u", "##g"), ("p", "##u"), ("##g", "##s"), ("b", "##u")])
def test_likelihood_gain_is_the_change_in_log_likelihood(pair):
    state = MergeState(count_words(HUG_CORPUS))
    before, predicted = log_likelihood(state), state.likelihood_gain(pair)
    state.merge(pair)
    assert log_likelihood(state) - before == pytest.approx(predicted, rel=1e-12)


def test_likelihood_score_makes_frequent_words_whole():
    """The course's ratio prefers pairs of rare pieces; WordPiece's likelihood gain makes `the` (most frequent
    word here) one piece among the first merges, and keeps it whole in the tokenizer."""
    texts = SENTENCES + ["Then the zebra quietly juxtaposed the xylophone."]
    likelihood = train_wordpiece(texts, vocab_size=60)
    assert "the" in likelihood[:60]
    assert WordPieceTokenizer(likelihood).tokenize("the cat") == ["the", "cat"]
    pmi = train_wordpiece(texts, vocab_size=60, score="pmi")
    assert likelihood.index("the") < (pmi.index("the") if "the" in pmi else len(pmi))


def test_vocab_has_the_requested_size_and_the_special_tokens():
    vocab = train_wordpiece(SENTENCES, vocab_size=50)
    assert len(vocab) == 50 and len(set(vocab)) == 50
    assert vocab[:5] == list(SPECIAL_TOKENS)
    assert WordPieceTokenizer(vocab).vocab_size == 50


def test_training_stops_when_no_pair_is_frequent_enough():
    vocab = train_wordpiece(["abc def"], vocab_size=100)  # every pair occurs once, below min_frequency=2
    assert vocab == list(SPECIAL_TOKENS) + ["##b", "##c", "##e", "##f", "a", "d"]
    assert "abc" in train_wordpiece(["abc def"], vocab_size=100, min_frequency=1)


def test_cased_training_keeps_capitals():
    assert "P" in train_wordpiece(HUG_CORPUS, vocab_size=20, lowercase=False)
    assert "P" not in train_wordpiece(HUG_CORPUS, vocab_size=20)


def test_too_small_a_vocab_is_refused():
    with pytest.raises(ValueError, match="at least 13"):
        train_wordpiece(HUG_CORPUS, vocab_size=10)


def test_trained_tokenizer_round_trips(tmp_path):
    tokenizer = train_tokenizer(SENTENCES, vocab_size=80)
    for sentence in SENTENCES:
        ids = tokenizer(sentence).input_ids
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == sentence.lower().replace("'", " ' ")  # "dog's" is dog ' s
    path = write_vocab(tokenizer.vocab, tmp_path / "vocab.txt")
    reloaded = WordPieceTokenizer.from_file(path)
    assert reloaded(SENTENCES).input_ids == tokenizer(SENTENCES).input_ids
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_vocab(tokenizer.vocab, path)


def test_trained_vocab_gives_the_same_ids_in_transformers(data_dir, transformers_lib, tmp_path):
    """A small vocab learnt from WikiText-2 has gaps (many [UNK], missing continuations): the reference agrees."""
    texts = (Path(data_dir) / "wikitext-2" / "valid.txt").read_text(encoding="utf-8").split("\n")
    tokenizer = train_tokenizer(texts[:400], vocab_size=400)
    tokenizer.save_pretrained(tmp_path)
    reference = transformers_lib.BertTokenizerFast.from_pretrained(tmp_path)
    held_out = texts[400:1400]
    theirs = reference(held_out, add_special_tokens=True, return_offsets_mapping=True)
    ours = tokenizer(held_out)
    assert ours.input_ids == theirs["input_ids"]
    assert ours.offsets == [[tuple(span) for span in row] for row in theirs["offset_mapping"]]
    assert sum(row.count(tokenizer.unk_token_id) for row in ours.input_ids) > 0  # the gaps were exercised
