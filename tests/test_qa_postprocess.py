"""From start/end logits to an answer: hand-made logits with hand-derived answers, a brute-force check, and
one-hot logits at the gold tokens of every real XQuAD question giving back the gold answer.

Lecture 2.2 (outputs: copying a span); run with `pytest -m outputs`.
"""
from functools import cache

import pytest
import torch

from minibert.finetune.qa.data import Answer, QAExample, read_squad
from minibert.finetune.qa.postprocess import best_span_in_window, best_spans, predictions_by_id
from minibert.finetune.qa.windows import QAWindow, QAWindows, make_windows
from minibert.resources import pretrained_checkpoint_dir
from minibert.tokenizer import WordPieceTokenizer

pytestmark = pytest.mark.outputs

CONTEXT = "Denver Broncos beat Carolina Panthers"
# [CLS] who won ? [SEP] denver broncos beat carolina panthers [SEP]
#   0    1   2  3   4     5      6      7      8        9       10
SPANS = [(0, 6), (7, 14), (15, 19), (20, 28), (29, 37)]


def one_window(context=CONTEXT, spans=SPANS, example_id="q"):
    example = QAExample(example_id, "who won?", context, [Answer("Denver Broncos", 0)])
    offsets = [None] * 5 + spans + [None]
    mask = [False] * 5 + [True] * len(spans) + [False]
    window = QAWindow(0, list(range(len(mask))), [0] * 5 + [1] * (len(spans) + 1), offsets, mask)
    return QAWindows([window], [example])


def logits(values: dict[int, float], length=11) -> torch.Tensor:
    row = torch.zeros(1, length)
    for index, value in values.items():
        row[0, index] = value
    return row


def test_an_end_before_its_start_is_never_returned():
    # highest start: "panthers" (9); highest end: "broncos" (6). The pair (9, 6) would score 10 but is backwards;
    # the best valid pairs: (5, 6) = 3 + 5 = 8 > (9, 9) = 5 + 1 = 6 > (6, 6) = 0 + 5.
    start, end = logits({9: 5.0, 5: 3.0}), logits({6: 5.0, 9: 1.0})
    [prediction] = best_spans(start, end, one_window())
    assert (prediction.text, prediction.start, prediction.end, prediction.score) == ("Denver Broncos", 0, 14, 8.0)
    assert (prediction.start_token, prediction.end_token, prediction.window_index) == (5, 6, 0)
    # with only the single best start and end paired (n_best=1) there is no valid span: no answer, not a wrong one
    [nothing] = best_spans(start, end, one_window(), n_best=1)
    assert (nothing.text, nothing.score, nothing.window_index) == ("", float("-inf"), -1)


def test_spans_over_the_question_and_special_tokens_are_skipped():
    start = logits({0: 50.0, 1: 100.0, 4: 80.0, 10: 90.0, 7: 1.0})  # [CLS], "who", [SEP], last [SEP]
    end = logits({0: 50.0, 2: 100.0, 4: 80.0, 10: 90.0, 8: 2.0})
    [prediction] = best_spans(start, end, one_window())
    assert prediction.text == "beat Carolina" and prediction.score == 3.0


def test_padding_beyond_the_window_is_ignored():
    start, end = logits({7: 2.0, 12: 99.0}, length=14), logits({8: 2.0, 13: 99.0}, length=14)  # 11..13: [PAD]
    [prediction] = best_spans(start, end, one_window())
    assert (prediction.text, prediction.score) == ("beat Carolina", 4.0)


def test_the_maximum_answer_length():
    start, end = logits({5: 5.0}), logits({9: 5.0, 5: 1.0})  # (5, 9) is 5 tokens: score 10
    [full] = best_spans(start, end, one_window(), max_answer_tokens=5)
    assert (full.text, full.score) == (CONTEXT, 10.0)
    [short] = best_spans(start, end, one_window(), max_answer_tokens=4)
    assert (short.text, short.score) == ("Denver", 6.0)  # (5, 5) = 5 + 1 beats (5, 6..8) = 5 + 0


def test_one_answer_per_question_across_its_windows():
    """Two windows of one context: the one with the higher start + end logit gives the answer, in characters
    of the whole context."""
    example = QAExample("q", "who?", CONTEXT, [Answer("Carolina Panthers", 20)])
    first = QAWindow(0, [0] * 8, [0] * 8, [None] * 4 + SPANS[:3] + [None], [False] * 4 + [True] * 3 + [False])
    second = QAWindow(0, [0] * 8, [0] * 8, [None] * 4 + SPANS[2:] + [None], [False] * 4 + [True] * 3 + [False])
    windows = QAWindows([first, second], [example])
    start = torch.tensor([[0, 0, 0, 0, 4.0, 0, 0, 0], [0, 0, 0, 0, 0, 3.0, 0, 0]])
    end = torch.tensor([[0, 0, 0, 0, 0, 0, 0.5, 0], [0, 0, 0, 0, 0, 0, 2.0, 0]])
    [prediction] = best_spans(start, end, windows)
    assert (prediction.window_index, prediction.text, prediction.start) == (1, "Carolina Panthers", 20)
    assert prediction.score == 5.0  # beats the first window's (4, 6) = 4.5
    with pytest.raises(ValueError, match="logits for 1 windows, but there are 2"):
        best_spans(start[:1], end[:1], windows)


def test_against_brute_force_on_random_logits():
    """With n_best at least the context length, the n-best search is the exhaustive search; with a smaller
    n_best every span it returns is still valid."""
    generator = torch.Generator().manual_seed(0)
    for _ in range(300):
        length = int(torch.randint(3, 40, (1,), generator=generator))
        mask = torch.rand(length, generator=generator) < 0.7
        start, end = torch.randn(length, generator=generator), torch.randn(length, generator=generator)
        max_tokens = int(torch.randint(1, 8, (1,), generator=generator))
        valid = [(s, e, float(start[s] + end[e])) for s in range(length) for e in range(s, min(s + max_tokens, length))
                 if mask[s] and mask[e]]
        expected = max(valid, key=lambda span: span[2], default=None)
        found = best_span_in_window(start, end, mask, n_best=length, max_answer_tokens=max_tokens)
        assert (found is None) == (expected is None)
        if found is not None:
            assert (found.start_token, found.end_token) == expected[:2] and found.score == pytest.approx(expected[2])
        small = best_span_in_window(start, end, mask, n_best=3, max_answer_tokens=max_tokens)
        if small is not None:
            s, e = small.start_token, small.end_token
            assert mask[s] and mask[e] and 0 <= e - s < max_tokens and small.score <= expected[2] + 1e-6


@cache
def tokenizer():
    return WordPieceTokenizer.from_pretrained(pretrained_checkpoint_dir())


@pytest.mark.parametrize("name, misaligned, longer_than_30", [("xquad.en.json", 1, 0), ("xquad.zh.json", 0, 14)])
def test_one_hot_logits_at_the_gold_tokens_give_the_gold_answer(data_dir, checkpoint_dir, name, misaligned,
                                                                  longer_than_30):
    """Every real XQuAD question: logits 1 at the gold start and end tokens of the windows that hold the answer
    (0 elsewhere) must give back the annotated answer character for character, except where the answer starts
    or ends inside a token, and there the nearest longer span around it. 14 Chinese answers are longer than
    the default max_answer_tokens=30 (up to 66 tokens): with the default they cannot be returned whole.
    MiniLM's vocabulary has only 244 CJK characters: most Chinese tokens are [UNK], and the answers still come
    back exactly, because an [UNK] keeps the offsets of the characters it stands for."""
    data = read_squad(data_dir / "xquad-squad11-dev-subset" / name).examples
    windows = make_windows(tokenizer(), data)
    unknown = sum(w.input_ids.count(tokenizer().unk_token_id) for w in windows) / sum(len(w) for w in windows)
    assert (unknown > 0.5) == (name == "xquad.zh.json")
    assert windows.unreachable == [] and len(windows.misaligned) == misaligned
    longest = max(len(window) for window in windows)
    start, end = torch.zeros(len(windows), longest), torch.zeros(len(windows), longest)
    long_answers = set()
    for row, window in enumerate(windows):
        if window.start_position != 0:
            start[row, window.start_position] = end[row, window.end_position] = 1.0
            if window.end_position - window.start_position + 1 > 30:
                long_answers.add(window.example_index)
    assert len(long_answers) == longer_than_30
    for max_answer_tokens in (30, 384):
        predictions = predictions_by_id(best_spans(start, end, windows, max_answer_tokens=max_answer_tokens))
        for index, example in enumerate(data):
            gold = example.answers[0].text
            if index in long_answers and max_answer_tokens == 30:
                assert predictions[example.id] != gold
            elif index in windows.misaligned:
                assert gold in predictions[example.id] != gold
            else:
                assert predictions[example.id] == gold
