"""Extractive question answering as a task of the fine-tuning loop: windows in, answer texts out.

Lecture 2.2 (outputs: copying a span out of the input); the extractive QA notebook. The pieces are qa/'s:
windows over long contexts (qa/windows.py), the best span of a question over its windows (qa/postprocess.py),
SQuAD's or the CMRC script's EM and F1 (qa/metrics.py). The counterpart is transformers' run_qa.py.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor, nn

from ..model.heads import BertForQuestionAnswering
from ..tokenizer import WordPieceTokenizer
from .batching import length_grouped_batches
from .qa import QAExample, best_spans, chinese_scores, make_windows, predictions_by_id, squad_scores
from .qa.windows import collate
from .tasks import ModelSource, TaskSettings, epoch_generator
from .trainer import Task


class QuestionAnsweringTask(Task):
    """Questions about contexts, each answered by a span of its context; scored by EM and F1 (in %)."""

    main_metric = "f1"

    def __init__(self, settings: TaskSettings, tokenizer: WordPieceTokenizer, source: ModelSource | None,
                 train: list[QAExample], evaluation: list[QAExample], batch_size: int = 16,
                 eval_batch_size: int = 64, seed: int = 0, max_answer_tokens: int = 30):
        self.settings, self.tokenizer, self.source = settings, tokenizer, source
        self.name = settings.task
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.max_answer_tokens = max_answer_tokens
        self.train_windows = self.encode(train)
        self.eval_examples = evaluation
        self.eval_windows = self.encode(evaluation)
        # what the trainer and the commands count and print
        self.train_features, self.eval_features = self.train_windows.windows, self.eval_windows.windows

    def encode(self, examples: list[QAExample]):
        return make_windows(self.tokenizer, examples, self.settings.max_length, self.settings.stride)

    def make_model(self) -> nn.Module:
        return self.source.make(BertForQuestionAnswering, None, None)

    def train_batches(self, epoch: int) -> list[dict[str, Tensor]]:
        windows = self.train_windows.windows
        order = length_grouped_batches([len(w) for w in windows], self.batch_size, epoch_generator(self.seed, epoch))
        return [asdict(collate([windows[i] for i in batch], self.tokenizer.pad_token_id)) for batch in order]

    @torch.no_grad()
    def predict(self, model: nn.Module, windows, device: torch.device | str = "cpu") -> dict[str, str]:
        """{question id: answer text}: the best span of each question over all its windows."""
        was_training = model.training
        model.eval()
        rows = windows.windows
        longest = max((len(w) for w in rows), default=1)
        start_logits = torch.full((len(rows), longest), float("-inf"))
        end_logits = torch.full((len(rows), longest), float("-inf"))
        for indices in length_grouped_batches([len(w) for w in rows], self.eval_batch_size, shuffle=False):
            batch = collate([rows[i] for i in indices], self.tokenizer.pad_token_id)
            out = model(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device),
                        token_type_ids=batch.token_type_ids.to(device))
            n = batch.input_ids.shape[1]
            start_logits[indices, :n] = out.start_logits.float().cpu()
            end_logits[indices, :n] = out.end_logits.float().cpu()
        model.train(was_training)
        spans = best_spans(start_logits, end_logits, windows, max_answer_tokens=self.max_answer_tokens)
        return predictions_by_id(spans)

    def held_out_predictions(self, model: nn.Module, device: torch.device | str = "cpu") -> dict[str, str]:
        return self.predict(model, self.eval_windows, device)

    def score(self, predictions: dict[str, str], examples: list[QAExample]) -> dict[str, float]:
        scores = chinese_scores if self.settings.chinese else squad_scores
        return scores(predictions, examples)

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return self.score(self.held_out_predictions(model, device), self.eval_examples)

    def save_files(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(folder, overwrite=True)
        self.settings.save(folder)
