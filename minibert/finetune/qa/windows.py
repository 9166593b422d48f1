"""Long contexts cut into overlapping windows, each [CLS] question [SEP] part of the context [SEP].

Lecture 2.2 (outputs: copying a span out of the input); the extractive QA notebook (planned). BERT reads at
most 512 tokens, and a paragraph can be longer, so the context is cut into windows of `max_length` tokens;
consecutive windows share `stride` tokens (the "document stride"), so that an answer cut by one window's edge
is whole in the next. Every window repeats the whole question: the model must see what is asked.
The windows are exactly those of transformers' fast tokenizer with `truncation="only_second",
return_overflowing_tokens=True, stride=stride` (tests/test_qa_windows.py compares them).

The answer becomes a start and an end token of the window that holds it whole; a window that does not
gets start = end = 0 ([CLS]): "no answer here", as in BERT's SQuAD code and transformers' run_qa.py.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import torch

from ...tokenizer import WordPieceTokenizer
from .data import QAData, QAExample

CLS_INDEX = 0  # where a window points when it does not hold the answer


@dataclass
class QAWindow:
    """One model input: [CLS] question [SEP] context[window] [SEP], and where the answer is in it."""

    example_index: int  # into QAWindows.examples
    input_ids: list[int]
    token_type_ids: list[int]
    offsets: list[tuple[int, int] | None]  # characters of the CONTEXT for context tokens, None for the others
    context_mask: list[bool]  # True for the tokens of the context: the only places an answer may start or end
    start_position: int = CLS_INDEX  # token where the answer starts, CLS_INDEX if the window lacks it
    end_position: int = CLS_INDEX  # token where it ends (inclusive)

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class QABatch:
    """Windows padded into tensors (batch, seq), with the names BertForQuestionAnswering takes."""

    input_ids: torch.Tensor
    token_type_ids: torch.Tensor
    attention_mask: torch.Tensor
    start_positions: torch.Tensor  # (batch,)
    end_positions: torch.Tensor


@dataclass
class QAWindows:
    """The windows of a set of examples, and what could not be represented.

    unreachable: indices of examples with an answer that no window holds whole (its tokens are more than a
    window's context room, or cut by every window's edge); long_questions: indices of examples whose question
    was cut to max_question_tokens; misaligned: indices of examples whose answer starts or ends inside a
    token (e.g. "5" in "57"), so that the closest span a model can give is longer than the answer.
    """

    windows: list[QAWindow]
    examples: list[QAExample]
    unreachable: list[int] = field(default_factory=list)
    long_questions: list[int] = field(default_factory=list)
    misaligned: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.windows)

    def summary(self) -> str:
        """One line for a log: windows per question, and every answer the windows cannot represent."""
        line = f"{len(self.windows):,} windows for {len(self.examples):,} questions"
        notes = ((len(self.unreachable), "answer{s} no window holds whole"),
                 (len(self.misaligned), "answer{s} starting or ending inside a token"),
                 (len(self.long_questions), "question{s} cut to max_question_tokens"))
        for count, what in notes:
            if count:
                line += f"; {count:,} " + what.format(s="" if count == 1 else "s")
        return line

    def __getitem__(self, index: int) -> QAWindow:
        return self.windows[index]

    def __iter__(self):
        return iter(self.windows)


def make_windows(tokenizer: WordPieceTokenizer, examples: Sequence[QAExample] | QAData, max_length: int = 384,
                 stride: int = 128, max_question_tokens: int = 64) -> QAWindows:
    """Every example as one or more windows of at most max_length tokens, consecutive ones sharing `stride`.

    The labels come from the first annotated answer (the others only matter to the metrics).
    """
    examples = list(examples)
    contexts = list(dict.fromkeys(example.context for example in examples))  # a paragraph has many questions
    tokens_of_context = dict(zip(contexts, _encode_texts(tokenizer, contexts)))
    question_tokens = _encode_texts(tokenizer, [example.question for example in examples])
    windows, unreachable, long_questions, misaligned = [], [], [], []
    for index, example in enumerate(examples):
        q_ids, _ = question_tokens[index]
        if len(q_ids) > max_question_tokens:
            long_questions.append(index)
            q_ids = q_ids[:max_question_tokens]
        c_ids, c_offsets = tokens_of_context[example.context]
        room = max_length - len(q_ids) - 3  # [CLS] question [SEP] context [SEP]
        if room <= stride:
            raise ValueError(f"question {example.id} takes {len(q_ids)} tokens, which leaves {room} of max_length="
                             f"{max_length} for the context, not more than stride={stride}; the windows could not "
                             f"advance. Raise max_length, lower stride, or lower max_question_tokens")
        answer_tokens = _answer_tokens(example, c_offsets)
        if answer_tokens is not None and (c_offsets[answer_tokens[0]][0] != example.answers[0].start
                                          or c_offsets[answer_tokens[1]][1] != example.answers[0].end):
            misaligned.append(index)
        found = False
        for first, last in window_ranges(len(c_ids), room, stride):
            window = _window(tokenizer, index, q_ids, c_ids[first:last], c_offsets[first:last])
            if answer_tokens is not None and first <= answer_tokens[0] and answer_tokens[1] < last:
                shift = len(q_ids) + 2 - first  # context token i sits at i - first + len(question) + 2
                window.start_position, window.end_position = answer_tokens[0] + shift, answer_tokens[1] + shift
                found = True
            windows.append(window)
        if example.answers and not found:
            unreachable.append(index)
    if long_questions:
        warnings.warn(f"{len(long_questions)} of {len(examples)} questions are longer than max_question_tokens="
                      f"{max_question_tokens} and were cut to it (the first: {examples[long_questions[0]].id}); "
                      f"raise max_question_tokens to keep them whole", stacklevel=2)
    return QAWindows(windows, examples, unreachable, long_questions, misaligned)


def window_ranges(num_tokens: int, room: int, stride: int) -> list[tuple[int, int]]:
    """[first, last) token ranges of `room` tokens, each starting room - stride after the one before, until the
    last one reaches the end (the rule of Hugging Face tokenizers' overflow)."""
    step = room - stride
    ranges = []
    for first in range(0, max(num_tokens, 1), step):
        last = min(first + room, num_tokens)
        ranges.append((first, last))
        if last == num_tokens:
            break
    return ranges


def collate(windows: Sequence[QAWindow], pad_token_id: int) -> QABatch:
    """Windows padded on the right to the longest of them."""
    longest = max(len(window) for window in windows)

    def padded(rows, value):
        return torch.tensor([row + [value] * (longest - len(row)) for row in rows], dtype=torch.long)

    return QABatch(
        input_ids=padded([w.input_ids for w in windows], pad_token_id),
        token_type_ids=padded([w.token_type_ids for w in windows], 0),
        attention_mask=padded([[1] * len(w) for w in windows], 0),
        start_positions=torch.tensor([w.start_position for w in windows], dtype=torch.long),
        end_positions=torch.tensor([w.end_position for w in windows], dtype=torch.long),
    )


def _encode_texts(tokenizer: WordPieceTokenizer, texts: list[str]) -> list[tuple[list[int], list]]:
    """Ids and offsets of each text, without the [CLS] and [SEP] the tokenizer puts around it."""
    if not texts:
        return []
    encoding = tokenizer(texts)
    return [(ids[1:-1], offsets[1:-1]) for ids, offsets in zip(encoding.input_ids, encoding.offsets)]


def _answer_tokens(example: QAExample, offsets: list[tuple[int, int]]) -> tuple[int, int] | None:
    """First and last context token of the first answer: the first token ending after the answer's first
    character, the last token starting before its end. None if no token covers it (it is only spaces)."""
    if not example.answers:
        return None
    answer = example.answers[0]
    first = next((i for i, (_, end) in enumerate(offsets) if end > answer.start), None)
    last = next((i for i in range(len(offsets) - 1, -1, -1) if offsets[i][0] < answer.end), None)
    if first is None or last is None or first > last:
        return None
    return first, last


def _window(tokenizer: WordPieceTokenizer, example_index: int, q_ids: list[int], c_ids: list[int],
            c_offsets: list[tuple[int, int]]) -> QAWindow:
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    input_ids = [cls, *q_ids, sep, *c_ids, sep]
    token_type_ids = [0] * (len(q_ids) + 2) + [1] * (len(c_ids) + 1)
    offsets = [None] * (len(q_ids) + 2) + [tuple(span) for span in c_offsets] + [None]
    context_mask = [False] * (len(q_ids) + 2) + [True] * len(c_ids) + [False]
    return QAWindow(example_index, input_ids, token_type_ids, offsets, context_mask)
