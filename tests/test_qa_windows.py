"""Windows over long contexts, with the real MiniLM tokenizer, on real English and Chinese paragraphs.

Lecture 2.2 (outputs: copying a span); run with `pytest -m outputs`. The windows must be transformers' own
(fast tokenizer, truncation="only_second", return_overflowing_tokens), the question whole in each, the
answer's tokens giving back exactly the answer's characters.
"""
from functools import cache

import pytest
import torch

from minibert.finetune.qa.data import Answer, QAExample, read_hw7, read_squad
from minibert.finetune.qa.windows import collate, make_windows, window_ranges
from minibert.resources import pretrained_checkpoint_dir
from minibert.tokenizer import WordPieceTokenizer

pytestmark = pytest.mark.outputs


@cache
def tokenizer():
    return WordPieceTokenizer.from_pretrained(pretrained_checkpoint_dir())


@cache
def examples(data_dir, name):
    if name.startswith("hw7"):
        return read_hw7(data_dir / "ntu-ml2023-hw7-drcd" / name).examples
    return read_squad(data_dir / "xquad-squad11-dev-subset" / name).examples


def longest_paragraph(data_dir, name):
    """The examples about the paragraph with the most tokens."""
    data = examples(data_dir, name)
    longest = max({e.context for e in data}, key=lambda context: len(tokenizer()(context).input_ids))
    return [e for e in data if e.context == longest]


@pytest.mark.parametrize("name, max_length, stride, first", [("xquad.en.json", 192, 64, 300),
                                                              ("xquad.zh.json", 128, 32, 200),
                                                              ("hw7_dev.json", 384, 128, 150)])
def test_windows_are_transformers_windows(data_dir, checkpoint_dir, transformers_lib, name, max_length, stride,
                                          first):
    data = examples(data_dir, name)[:first]
    ours = make_windows(tokenizer(), data, max_length=max_length, stride=stride)
    reference = transformers_lib.BertTokenizerFast.from_pretrained(checkpoint_dir)
    theirs = reference([e.question for e in data], [e.context for e in data], truncation="only_second",
                       max_length=max_length, stride=stride, return_overflowing_tokens=True,
                       return_offsets_mapping=True)
    assert len(ours) == len(theirs["input_ids"]) > len(data)  # some contexts need several windows
    assert [w.example_index for w in ours] == list(theirs["overflow_to_sample_mapping"])
    for window, ids, types, offsets in zip(ours, theirs["input_ids"], theirs["token_type_ids"],
                                           theirs["offset_mapping"]):
        assert (window.input_ids, window.token_type_ids) == (ids, types)
        context = [tuple(span) for span, in_context in zip(offsets, window.context_mask) if in_context]
        assert [span for span in window.offsets if span is not None] == context


@pytest.mark.parametrize("name", ["xquad.en.json", "hw7_dev.json"])
def test_long_real_context(data_dir, checkpoint_dir, name):
    """The longest paragraph (617 tokens in English, 1,236 in Chinese): the question whole in every window,
    consecutive windows sharing exactly `stride` context tokens, and every answer recovered character for
    character from the token span of each window that holds it."""
    data = longest_paragraph(data_dir, name)
    stride, max_length = 128, 384
    windows = make_windows(tokenizer(), data, max_length=max_length, stride=stride)
    context_tokens = tokenizer()(data[0].context).input_ids[1:-1]
    for index, example in enumerate(data):
        question = tokenizer()(example.question).input_ids[1:-1]
        mine = [w for w in windows if w.example_index == index]
        room = max_length - len(question) - 3
        expected_count = 1 + -(-(len(context_tokens) - room) // (room - stride))  # ceil
        assert len(mine) == expected_count >= 2
        for window in mine:
            assert window.input_ids[:len(question) + 2] == [tokenizer().cls_token_id, *question,
                                                            tokenizer().sep_token_id]
            assert window.input_ids[-1] == tokenizer().sep_token_id and len(window) <= max_length
            assert window.context_mask == [False] * (len(question) + 2) + [True] * (len(window) - len(question) - 3) \
                + [False]
        spans = [[span for span in w.offsets if span is not None] for w in mine]
        for before, after in zip(spans, spans[1:]):
            assert before[-stride:] == after[:stride] and before[-stride - 1] != after[0]  # overlap: exactly stride
        joined = spans[0] + [span for part in spans[1:] for span in part[stride:]]
        assert len(joined) == len(context_tokens) and joined == sorted(joined)  # every context token, once, in order
        answer = example.answers[0]
        holders = [w for w in mine if w.start_position != 0]
        assert holders and index not in windows.unreachable
        for window in holders:
            assert window.context_mask[window.start_position] and window.start_position <= window.end_position
            recovered = example.context[window.offsets[window.start_position][0]:window.offsets[window.end_position][1]]
            assert recovered == answer.text
        for window in mine:
            if window not in holders:  # the answer is not whole in this window's characters
                first, last = window.offsets[len(question) + 2][0], window.offsets[-2][1]
                assert not (first <= answer.start and answer.end <= last)
                assert window.end_position == 0


def test_short_answers_always_fit_and_too_long_never(data_dir, checkpoint_dir):
    """With small windows: an answer of at most stride + 1 tokens is always whole in some window (the windows
    overlap by stride), one longer than a window's room never is, and every example is one or the other."""
    data = examples(data_dir, "xquad.en.json")[:300]
    stride, max_length = 8, 48
    windows = make_windows(tokenizer(), data, max_length=max_length, stride=stride, max_question_tokens=30)
    held = {w.example_index for w in windows if w.start_position != 0}
    assert held.isdisjoint(windows.unreachable) and held | set(windows.unreachable) == set(range(len(data)))
    assert windows.unreachable  # these settings do lose some
    for index in windows.unreachable:
        example = data[index]
        answer_tokens = tokenizer()(example.answers[0].text).input_ids[1:-1]
        assert len(answer_tokens) > stride + 1
    for index in set(range(len(data))) - set(windows.long_questions):
        room = max_length - len(tokenizer()(data[index].question).input_ids[1:-1]) - 3
        if len(tokenizer()(data[index].answers[0].text).input_ids) - 2 > room:
            assert index in windows.unreachable


def test_hand_made_example(checkpoint_dir):
    context = "the cat sat on the mat because the mat was warm"
    example = QAExample("1", "where?", context, [Answer("the mat", 15)])
    windows = make_windows(tokenizer(), [example], max_length=12, stride=2)
    # where? -> "where", "?" : 2 tokens; room = 12 - 2 - 3 = 7 context tokens, windows start every 5
    assert window_ranges(11, 7, 2) == [(0, 7), (5, 11)]
    assert [w.input_ids[4:-1] for w in windows] == [tokenizer()(context).input_ids[1:8],
                                                   tokenizer()(context).input_ids[6:12]]
    assert [(w.start_position, w.end_position) for w in windows] == [(8, 9), (0, 0)]  # tokens 4, 5 of the context
    assert windows.unreachable == [] and windows.misaligned == []
    later = QAExample("2", "where?", context, [Answer("mat because the mat", 19)])  # tokens 5..8: the 2nd window
    windows = make_windows(tokenizer(), [later], max_length=12, stride=2)
    assert [(w.start_position, w.end_position) for w in windows] == [(0, 0), (4, 7)] and windows.unreachable == []
    straddling = QAExample("3", "where?", context, [Answer("sat on the mat because the", 8)])  # tokens 2..7
    windows = make_windows(tokenizer(), [straddling], max_length=12, stride=2)
    assert windows.unreachable == [0]
    assert windows.summary() == "2 windows for 1 questions; 1 answer no window holds whole"
    piece = QAExample("4", "what?", "in tokenization", [Answer("token", 3)])  # "token", "##ization": aligned
    windows = make_windows(tokenizer(), [piece])
    assert windows.misaligned == [] and (windows[0].start_position, windows[0].end_position) == (5, 5)
    inside = QAExample("5", "what?", "in tokenization", [Answer("oken", 4)])  # inside "token"
    windows = make_windows(tokenizer(), [inside])
    assert windows.misaligned == [0] and (windows[0].start_position, windows[0].end_position) == (5, 5)


def test_long_question_is_cut_and_said(checkpoint_dir):
    example = QAExample("q", " ".join(["why"] * 80), "because it is so", [Answer("because", 0)])
    with pytest.warns(UserWarning, match="1 of 1 questions are longer than max_question_tokens=64"):
        windows = make_windows(tokenizer(), [example])
    why = tokenizer().convert_tokens_to_ids("why")
    assert windows.long_questions == [0] and windows[0].input_ids[:66] == [tokenizer().cls_token_id, *[why] * 64,
                                                                          tokenizer().sep_token_id]
    assert windows[0].start_position == 66
    with pytest.raises(ValueError, match="not more than stride=128"):
        make_windows(tokenizer(), [example], max_length=192, max_question_tokens=80)


def test_collate_pads_on_the_right(checkpoint_dir):
    data = [QAExample("a", "who?", "Ann", [Answer("Ann", 0)]), QAExample("b", "who is it?", "Bob and Ann", [])]
    batch = collate(make_windows(tokenizer(), data).windows, tokenizer().pad_token_id)
    assert batch.input_ids.shape == (2, 10)
    torch.testing.assert_close(batch.attention_mask.sum(1), torch.tensor([6, 10]))
    assert batch.input_ids[0, 6:].tolist() == [tokenizer().pad_token_id] * 4
    torch.testing.assert_close(batch.start_positions, torch.tensor([4, 0]))
    torch.testing.assert_close(batch.end_positions, torch.tensor([4, 0]))
