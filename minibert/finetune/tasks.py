"""The tasks the fine-tuning loop trains: one class (or a number) per text or pair, and a class per word.

Lecture 2.1 (inputs) and 2.2 (outputs); the notebooks of section 2.2. Each task turns its examples into
token ids once (batching.py), hands the trainer a fresh length-grouped order every epoch, and scores a model
with the metrics of metrics.py. The counterparts are transformers' run_glue.py and run_ner.py.
The same `predict` serves the trainer's evaluations and `python -m minibert evaluate` / `predict`, so the
numbers they print are the same.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from ..config import BertConfig, default_labels
from ..model.heads import BertForSequenceClassification, BertForTokenClassification
from ..tokenizer import WordPieceTokenizer
from .batching import collate, encode_tagged, encode_texts, length_grouped_batches, word_predictions
from .data import TaggedSentence, TextExample
from .metrics import accuracy, entity_scores
from .trainer import Task, model_inputs

TASK_FILE = "finetune_task.json"  # beside the weights: what `evaluate` and `predict` need to read data alike


@dataclass
class TaskSettings:
    """What a saved model remembers of its task (written to TASK_FILE)."""
    task: str
    kind: str                        # "sequence" (a class or number per text), "token" (per word) or "qa" (a span)
    max_length: int = 128
    text_column: str | None = None   # the generic task's columns
    pair_column: str | None = None
    label_column: str | None = None
    label_all_pieces: bool = False
    stride: int = 128                # question answering: tokens shared by consecutive windows of a context
    chinese: bool = False            # question answering: score by characters (CMRC), not English words (SQuAD)

    def save(self, folder: Path) -> None:
        (folder / TASK_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> "TaskSettings | None":
        path = Path(folder) / TASK_FILE
        return cls(**json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None


@dataclass
class ModelSource:
    """Where the weights come from: a folder (pre-trained or fine-tuned), or a preset name for random weights."""
    init: str | Path
    preset_config: BertConfig | None = None   # set when `init` is a preset
    overrides: dict = field(default_factory=dict)  # config fields, e.g. dropout

    def make(self, model_class, id2label: dict[int, str] | None, problem_type: str | None) -> nn.Module:
        if self.preset_config is not None:
            config = BertConfig(**{**asdict(self.preset_config), **self.overrides, "id2label": id2label,
                                   "problem_type": problem_type})
            return model_class(config)
        return model_class.from_pretrained(self.init, labels=id2label, problem_type=problem_type, **self.overrides)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The shuffling of one epoch: a function of the seed and the epoch alone, so a resumed run sees the same."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


class ClassificationTask(Task):
    """One class per text or pair (SST-2, SST-5, CFIMDB, a user's table), or one number (`labels` None:
    regression, scored by Pearson's correlation)."""

    def __init__(self, settings: TaskSettings, tokenizer: WordPieceTokenizer, source: ModelSource,
                 train: list[TextExample], evaluation: list[TextExample], labels: list | None,
                 batch_size: int = 32, eval_batch_size: int = 128, seed: int = 0):
        self.settings, self.tokenizer, self.source = settings, tokenizer, source
        self.name = settings.task
        self.regression = labels is None
        self.id2label = default_labels(1) if self.regression else {k: str(label) for k, label in enumerate(labels)}
        self.main_metric = "pearson" if self.regression else "accuracy"
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.train_features = self.encode(train)
        self.eval_examples = evaluation
        self.eval_features = self.encode(evaluation)

    def encode(self, examples: list[TextExample]) -> list[dict]:
        label_to_id = None if self.regression else {name: k for k, name in self.id2label.items()}
        return encode_texts(self.tokenizer, examples, label_to_id, self.settings.max_length)

    def make_model(self) -> nn.Module:
        return self.source.make(BertForSequenceClassification, self.id2label,
                                "regression" if self.regression else "single_label_classification")

    def train_batches(self, epoch: int) -> list[dict[str, Tensor]]:
        return shuffled_batches(self.train_features, self.batch_size, epoch_generator(self.seed, epoch))

    def predict(self, model: nn.Module, features: list[dict], device: torch.device | str = "cpu") -> list:
        """A label name (or a number, for regression) per example, in the examples' order."""
        outputs = predict_in_batches(model, features, self.eval_batch_size, device)
        if self.regression:
            return [float(logits[0]) for logits in outputs]
        return [self.id2label[int(logits.argmax())] for logits in outputs]

    def score(self, predictions: list, examples: list[TextExample]) -> dict[str, float]:
        if self.regression:
            gold = [float(e.label) for e in examples]
            mse = sum((p - y) ** 2 for p, y in zip(predictions, gold)) / len(gold)
            return {"pearson": pearson(predictions, gold), "mse": mse}
        return {"accuracy": accuracy(predictions, [str(e.label) for e in examples])}

    def held_out_predictions(self, model: nn.Module, device: torch.device | str = "cpu") -> list:
        return self.predict(model, self.eval_features, device)

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return self.score(self.held_out_predictions(model, device), self.eval_examples)

    def save_files(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(folder, overwrite=True)
        self.settings.save(folder)


class TokenClassificationTask(Task):
    """A class per word (CoNLL-2003 named entities), scored by entity-level F1 (metrics.entity_scores)."""

    main_metric = "f1"

    def __init__(self, settings: TaskSettings, tokenizer: WordPieceTokenizer, source: ModelSource,
                 train: list[TaggedSentence], evaluation: list[TaggedSentence], labels: list[str],
                 batch_size: int = 32, eval_batch_size: int = 128, seed: int = 0):
        self.settings, self.tokenizer, self.source = settings, tokenizer, source
        self.name = settings.task
        self.id2label = dict(enumerate(labels))
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.train_features = self.encode(train)
        self.eval_examples = evaluation
        self.eval_features = self.encode(evaluation)

    def encode(self, sentences: list[TaggedSentence]) -> list[dict]:
        label_to_id = {name: k for k, name in self.id2label.items()}
        return encode_tagged(self.tokenizer, sentences, label_to_id, self.settings.max_length,
                             self.settings.label_all_pieces)

    def make_model(self) -> nn.Module:
        return self.source.make(BertForTokenClassification, self.id2label, None)

    def train_batches(self, epoch: int) -> list[dict[str, Tensor]]:
        return shuffled_batches(self.train_features, self.batch_size, epoch_generator(self.seed, epoch))

    def predict(self, model: nn.Module, features: list[dict], device: torch.device | str = "cpu",
                sentences: list[TaggedSentence] | None = None) -> list[list[str]]:
        """A tag per word of each sentence; a word that truncation cut off gets "O"."""
        outputs = predict_in_batches(model, features, self.eval_batch_size, device)
        outside = next((k for k, name in self.id2label.items() if name == "O"), 0)
        tags = []
        for k, (logits, feature) in enumerate(zip(outputs, features)):
            num_words = len(sentences[k].words) if sentences is not None else None
            words = word_predictions(logits.argmax(-1), feature["word_ids"], num_words, fill=outside)
            tags.append([self.id2label[w] for w in words])
        return tags

    def score(self, predictions: list[list[str]], sentences: list[TaggedSentence]) -> dict[str, float]:
        scores = entity_scores([s.tags for s in sentences], predictions)
        words = [(p == g) for s, tags in zip(sentences, predictions) for p, g in zip(tags, s.tags)]
        return {"f1": scores["f1"], "precision": scores["precision"], "recall": scores["recall"],
                "word_accuracy": sum(words) / max(1, len(words))}

    def held_out_predictions(self, model: nn.Module, device: torch.device | str = "cpu") -> list[list[str]]:
        return self.predict(model, self.eval_features, device, self.eval_examples)

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return self.score(self.held_out_predictions(model, device), self.eval_examples)

    def save_files(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(folder, overwrite=True)
        self.settings.save(folder)


def shuffled_batches(features: list[dict], batch_size: int, generator: torch.Generator) -> list[dict[str, Tensor]]:
    lengths = [len(f["input_ids"]) for f in features]
    return [collate([features[i] for i in batch]) for batch in length_grouped_batches(lengths, batch_size, generator)]


@torch.no_grad()
def predict_in_batches(model: nn.Module, features: list[dict], batch_size: int,
                       device: torch.device | str = "cpu") -> list[Tensor]:
    """The logits of each feature (c, or n c for a token task at its own n tokens), in the features' order.

    Batches of similar length, longest first: little padding, and the memory peak comes first."""
    was_training = model.training
    model.eval()
    lengths = [len(f["input_ids"]) for f in features]
    outputs: list[Tensor | None] = [None] * len(features)
    for indices in length_grouped_batches(lengths, batch_size, shuffle=False):
        batch = collate([{k: v for k, v in features[i].items() if k not in ("label", "labels")} for i in indices])
        logits = model(**{k: v.to(device) for k, v in model_inputs(batch).items()}).logits.float().cpu()
        for row, i in enumerate(indices):
            outputs[i] = logits[row, :lengths[i]] if logits.dim() == 3 else logits[row]
    model.train(was_training)
    return outputs


def pearson(x: list[float], y: list[float]) -> float:
    """Pearson's correlation: the covariance over the product of the standard deviations (0 for a constant)."""
    a, b = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    a, b = a - a.mean(), b - b.mean()
    norm = float(a.norm() * b.norm())
    return float((a * b).sum()) / norm if norm > 0 else 0.0
