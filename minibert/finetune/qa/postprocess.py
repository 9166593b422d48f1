"""From start and end logits back to an answer: a span of characters of the original context.

Lecture 2.2 (outputs: copying a span out of the input); the extractive QA notebook (planned). The model scores
every token as a start and as an end; the answer is the span (start, end) with the highest start + end
logit among the spans that make sense: both inside the context (not the question, not [CLS], [SEP] or
[PAD]), end not before start, at most `max_answer_tokens` long. As in BERT's SQuAD code and transformers'
run_qa.py, only the `n_best` highest starts and `n_best` highest ends of each window are paired (n_best^2
candidates instead of seq^2); unlike them, the question and special tokens are masked BEFORE taking those
n_best, so a window whose top logits all sit on the question still yields its best context span.
A question's windows compete on that score, and the winner's tokens are mapped back to characters with the
tokenizer's offsets: the answer is context[offsets[start][0]:offsets[end][1]], the original text exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .windows import QAWindows


@dataclass(frozen=True)
class Span:
    """The best valid span of one window: its first and last token (inclusive) and start + end logit."""

    start_token: int
    end_token: int
    score: float


@dataclass
class QAPrediction:
    """The answer to one question: its text, where it is in the context, its score and where it came from."""

    example_id: str
    text: str
    start: int  # character offsets in the context: context[start:end] == text
    end: int
    score: float  # start logit + end logit; -inf when no window has a valid span
    window_index: int  # into QAWindows.windows; -1 when there is no answer
    start_token: int  # in that window
    end_token: int


def best_spans(start_logits: torch.Tensor, end_logits: torch.Tensor, windows: QAWindows, n_best: int = 20,
               max_answer_tokens: int = 30) -> list[QAPrediction]:
    """One prediction per example of `windows`, in the examples' order.

    start_logits, end_logits: (num_windows, seq), one row per window in the order of `windows` (seq may be
    longer than a window: padding is ignored).
    """
    if start_logits.shape != end_logits.shape or start_logits.dim() != 2:
        raise ValueError(f"start_logits and end_logits must both be (num_windows, seq); got "
                         f"{tuple(start_logits.shape)} and {tuple(end_logits.shape)}")
    if start_logits.shape[0] != len(windows):
        raise ValueError(f"got logits for {start_logits.shape[0]} windows, but there are {len(windows)} windows; "
                         f"pass one row per window, in the order of windows.windows")
    if n_best < 1 or max_answer_tokens < 1:
        raise ValueError(f"n_best and max_answer_tokens must be >= 1, got {n_best} and {max_answer_tokens}")
    best = [QAPrediction(example.id, "", 0, 0, float("-inf"), -1, 0, 0) for example in windows.examples]
    start_logits, end_logits = start_logits.detach().float().cpu(), end_logits.detach().float().cpu()
    for index, window in enumerate(windows.windows):
        if len(window) > start_logits.shape[1]:
            raise ValueError(f"window {index} has {len(window)} tokens but the logits only {start_logits.shape[1]}"
                             f" positions; were the logits computed on truncated inputs?")
        span = best_span_in_window(start_logits[index, :len(window)], end_logits[index, :len(window)],
                                   torch.tensor(window.context_mask), n_best, max_answer_tokens)
        if span is None or span.score <= best[window.example_index].score:  # ties: the earlier window keeps it
            continue
        example = windows.examples[window.example_index]
        start, end = window.offsets[span.start_token][0], window.offsets[span.end_token][1]
        best[window.example_index] = QAPrediction(example.id, example.context[start:end], start, end, span.score,
                                                  index, span.start_token, span.end_token)
    return best


def best_span_in_window(start_logits: torch.Tensor, end_logits: torch.Tensor, context_mask: torch.Tensor,
                        n_best: int = 20, max_answer_tokens: int = 30) -> Span | None:
    """The best valid span of one window, or None if it has none.

    start_logits, end_logits, context_mask: (seq,).
    """
    ### BEGIN SOLUTION qa_span_search
    context_tokens = context_mask.nonzero().squeeze(1)  # (num_context,): only these may start or end the answer
    if context_tokens.numel() == 0:
        return None
    k = min(n_best, context_tokens.numel())
    top_start = start_logits[context_tokens].topk(k)  # (k,) values, and indices into context_tokens
    top_end = end_logits[context_tokens].topk(k)
    start_tokens, end_tokens = context_tokens[top_start.indices], context_tokens[top_end.indices]
    starts, ends = start_tokens[:, None], end_tokens[None, :]  # (k, 1) and (1, k): every pair
    length = ends - starts + 1
    valid = (length >= 1) & (length <= max_answer_tokens)  # (k, k)
    if not valid.any():
        return None
    scores = (top_start.values[:, None] + top_end.values[None, :]).masked_fill(~valid, float("-inf"))
    flat = int(scores.flatten().argmax())
    i, j = divmod(flat, k)
    return Span(int(start_tokens[i]), int(end_tokens[j]), float(scores[i, j]))
    ### END SOLUTION


def predictions_by_id(predictions: list[QAPrediction]) -> dict[str, str]:
    """{question id: answer text}: what the metrics and the homework's CSV take."""
    return {prediction.example_id: prediction.text for prediction in predictions}
