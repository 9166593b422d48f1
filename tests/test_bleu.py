"""BLEU by hand equals sacrebleu's corpus_bleu (defaults: 13a tokenizer, case kept, exp smoothing) within 0.01.

Lecture 2.2 (general sequence output: scoring translations); run with `pytest -m outputs`. The references are real
Multi30k English lines; the hypotheses are the same lines perturbed with a seeded generator (words dropped,
swapped, replaced, cut short, case changed), so that every n-gram order scores somewhere between 0 and 100.
"""
import random

import pytest
from pytest import approx

from minibert.seq2seq.bleu import corpus_bleu, tokenize_13a

pytestmark = pytest.mark.outputs


@pytest.fixture(scope="module")
def sacrebleu():
    """The reference; a test-only dependency (absent: skipped locally, a failure on CI, as conftest.py does)."""
    try:
        import sacrebleu
    except ImportError:
        from conftest import _absent
        _absent("sacrebleu is not installed: pip install -r requirements-test.txt")
    return sacrebleu


@pytest.fixture(scope="module")
def references(data_dir):
    path = data_dir / "multi30k" / "raw" / "test_2016_flickr.en"
    if not path.is_file():
        pytest.skip(f"no {path}")
    return path.read_text(encoding="utf-8").splitlines()[:300]


def perturb(line: str, rng: random.Random, strength: float) -> str:
    words = line.split()
    out = []
    for word in words:
        roll = rng.random()
        if roll < strength / 3:
            continue                                    # dropped
        if roll < 2 * strength / 3:
            word = rng.choice(["a", "the", "dog", "man", "is", "."])  # replaced
        elif roll < strength:
            word = word.upper() if rng.random() < 0.5 else word + ","
        out.append(word)
    if len(out) > 2 and rng.random() < strength:
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]         # two neighbours swapped
    if rng.random() < strength / 2:
        out = out[: max(1, len(out) // 2)]              # cut short: the brevity penalty applies
    return " ".join(out)


@pytest.mark.parametrize("strength", [0.0, 0.1, 0.3, 0.6, 0.9])
def test_equals_sacrebleu_on_perturbed_multi30k(sacrebleu, references, strength):
    rng = random.Random(strength)
    hypotheses = [perturb(line, rng, strength) for line in references]
    mine = corpus_bleu(hypotheses, [references])
    theirs = sacrebleu.corpus_bleu(hypotheses, [references])
    assert mine.score == approx(theirs.score, abs=0.01)
    assert mine.precisions == approx(theirs.precisions, abs=0.01)
    assert (mine.sys_len, mine.ref_len) == (theirs.sys_len, theirs.ref_len)
    assert mine.brevity_penalty == approx(theirs.bp, abs=1e-6)
    if strength == 0.0:
        assert mine.score == approx(100.0)


def test_two_reference_sets_and_short_hypotheses(sacrebleu, references):
    """A second reference set, closest reference length, and lines too short for 4-grams (smoothing)."""
    rng = random.Random(1)
    other = [perturb(line, rng, 0.3) for line in references[:50]]
    hypotheses = [" ".join(line.split()[:rng.randint(1, 4)]) for line in references[:50]]
    mine = corpus_bleu(hypotheses, [references[:50], other])
    theirs = sacrebleu.corpus_bleu(hypotheses, [references[:50], other])
    assert mine.score == approx(theirs.score, abs=0.01)
    assert mine.ref_len == theirs.ref_len


def test_clipping_smoothing_and_brevity_by_hand():
    """Papineni et al.'s example: 'the' seven times against 'the cat is on the mat'. Clipped, 'the' counts twice:
    unigram precision 2/7. No bigram, trigram or 4-gram matches (of 6, 5, 4): exp smoothing gives them
    100 / (2 x 6), 100 / (4 x 5), 100 / (8 x 4). 7 tokens against 6: no brevity penalty."""
    import math
    score = corpus_bleu(["the the the the the the the"], ["the cat is on the mat"])
    expected = [100 * 2 / 7, 100 / 12, 100 / 20, 100 / 32]
    assert score.precisions == approx(expected)
    assert score.brevity_penalty == 1.0
    assert score.score == approx(math.exp(sum(map(math.log, expected)) / 4))
    # c = 2 tokens against r = 6: BP = exp(1 - 6/2); no 3- or 4-grams at all, so BLEU is 0 however good the rest
    short = corpus_bleu(["the cat"], ["the cat is on the mat"])
    assert short.brevity_penalty == approx(math.exp(-2))
    assert short.precisions[:2] == [100.0, 100.0] and short.score == approx(0.0)


@pytest.mark.parametrize("line", ["A man, in a blue shirt, is 3.5 feet-tall.", "Two dogs (one black) run & play!",
                                  "He said &quot;hello&quot; -- twice; 1,000 times?", "1990-2000 it's e-mail"])
def test_13a_tokenizer_equals_sacrebleus(sacrebleu, line):
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
    assert tokenize_13a(line) == Tokenizer13a()(line).split()
