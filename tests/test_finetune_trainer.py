"""The fine-tuning loop: reproducible, resumable, keeps the best model, stops early, and learns.

Lecture 2.2 (outputs); run with `pytest -m outputs`. The tasks here are synthetic, because they prove the
mechanism better than a slice of real data: their answer is known, and a tiny model learns them in seconds.
"""
import dataclasses
import json

import pytest
import torch
from torch.testing import assert_close

from minibert.config import BertConfig, default_labels
from minibert.finetune.trainer import FinetuneConfig, FinetuneTrainer, Task, model_inputs
from minibert.model.heads import BertForSequenceClassification
from minibert.pretraining.trainer import TrainingDiverged

pytestmark = pytest.mark.outputs
TINY = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                  max_position_embeddings=16, id2label=default_labels(2))


class VocabularyHalfTask(Task):
    """Label 1 when a sequence's words come from the upper half of the vocabulary, 0 from the lower half:
    learnable from the bag of words alone. Sequences of 3 to 12 tokens, padded per batch."""

    name, main_metric = "halves", "accuracy"

    def __init__(self, n_train=96, n_eval=64, batch_size=16, seed=0):
        self.batch_size, self.seed = batch_size, seed
        self.train, self.eval = self._examples(n_train, seed), self._examples(n_eval, seed + 100)

    def _examples(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        examples = []
        for _ in range(n):
            label, length = int(torch.randint(2, (), generator=g)), int(torch.randint(3, 13, (), generator=g))
            low = 5 + label * 17
            examples.append((torch.randint(low, low + 17, (length,), generator=g), label))
        return examples

    def make_model(self):
        return BertForSequenceClassification(TINY)

    def _collate(self, examples):
        n = max(len(ids) for ids, _ in examples) + 1
        input_ids = torch.zeros(len(examples), n, dtype=torch.long)
        for i, (ids, _) in enumerate(examples):
            input_ids[i, 0], input_ids[i, 1:len(ids) + 1] = 1, ids  # 1 plays [CLS]
        return {"input_ids": input_ids, "attention_mask": (input_ids > 0).long(),
                "labels": torch.tensor([label for _, label in examples])}

    def train_batches(self, epoch):
        order = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()
        return [self._collate([self.train[i] for i in order[k:k + self.batch_size]])
                for k in range(0, len(order), self.batch_size)]

    def evaluate(self, model, device):
        batch = self._collate(self.eval)
        predictions = model(**model_inputs(batch)).logits.argmax(-1)
        return {"accuracy": (predictions == batch["labels"]).float().mean().item()}


class ScriptedTask(VocabularyHalfTask):
    """Reports metrics from a script instead of measuring them, and keeps the weights it was shown."""

    def __init__(self, script):
        super().__init__()
        self.script, self.seen = list(script), []

    def evaluate(self, model, device):
        self.seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"accuracy": self.script[len(self.seen) - 1], "loss": 1.0}


def run(tmp_path, task=None, until_step=None, resume=False, model=None, **options):
    options = {"epochs": 3, "lr": 5e-3, "warmup": 0.1, "quiet": True, "plot": False, **options}
    trainer = FinetuneTrainer(task or VocabularyHalfTask(), FinetuneConfig(out_dir=tmp_path, **options), model=model)
    if resume:
        trainer.resume()
    return trainer, trainer.train(until_step)


def assert_same_weights(a, b):
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_the_same_seed_gives_bit_identical_weights_and_another_seed_does_not(tmp_path):
    first, result = run(tmp_path / "a")
    second, again = run(tmp_path / "b")
    assert_same_weights(first.model, second.model)
    assert [h["loss"] for h in result.history] == [h["loss"] for h in again.history]
    other, _ = run(tmp_path / "c", seed=1)
    assert not torch.equal(other.model.classifier.weight, first.model.classifier.weight)


def test_resuming_after_an_interruption_equals_an_uninterrupted_run(tmp_path):
    """Stopped mid-epoch (step 8 of 6 per epoch), with dropout on: weights, optimizer, schedule, random state
    and the data's position must all come back for the weights to be equal bit for bit."""
    whole, whole_result = run(tmp_path / "whole")
    run(tmp_path / "halves", until_step=8)
    resumed, resumed_result = run(tmp_path / "halves", resume=True)
    assert resumed.step == whole.step == 18
    assert_same_weights(whole.model, resumed.model)
    without_time = [{k: v for k, v in h.items() if k != "seconds"} for h in whole_result.history]
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in resumed_result.history] == without_time
    assert [e["accuracy"] for e in resumed_result.evaluations] == [e["accuracy"] for e in whole_result.evaluations]


def test_the_best_checkpoint_is_the_one_with_the_best_metric(tmp_path):
    task = ScriptedTask([0.50, 0.80, 0.60, 0.79, 0.70, 0.65])
    trainer, result = run(tmp_path, task, eval_every=3)
    assert [e["step"] for e in result.evaluations] == [3, 6, 9, 12, 15, 18]
    assert (result.best_step, result.best_metric) == (6, 0.80)
    best = BertForSequenceClassification.from_pretrained(tmp_path / "best")
    for name, tensor in best.state_dict().items():
        assert torch.equal(tensor, task.seen[1][name]), name
    assert not torch.equal(best.classifier.weight, trainer.model.classifier.weight)  # training went on
    assert json.loads((tmp_path / "best" / "eval_results.json").read_text())["step"] == 6


def test_early_stopping_stops_after_patience_evaluations_without_improvement(tmp_path):
    task = ScriptedTask([0.5, 0.6, 0.6, 0.55, 0.9, 0.95])  # equal is not better
    trainer, result = run(tmp_path, task, eval_every=2, patience=2)
    assert result.stopped_early and trainer.step == 8 and len(task.seen) == 4
    assert (result.best_step, result.best_metric) == (4, 0.6)
    script = [0.5, 0.6, 0.6, 0.55, 0.9, 0.95, 0.95, 0.95, 0.96]  # never three evaluations without improvement
    patient, result = run(tmp_path / "patient", ScriptedTask(script), eval_every=2, patience=3)
    assert not result.stopped_early and patient.step == 18 and (result.best_step, result.best_metric) == (18, 0.96)


def test_a_tiny_model_learns_a_trivially_learnable_task(tmp_path):
    trainer, result = run(tmp_path, epochs=6, plot=True)
    accuracies = [e["accuracy"] for e in result.evaluations]
    assert accuracies[0] < 0.8 and accuracies[-1] >= 0.9, accuracies  # chance is 0.5
    assert result.history[-1]["loss"] < result.history[0]["loss"] / 2
    assert (tmp_path / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["best_metric"] == max(accuracies) and len(saved["history"]) == 36


def test_a_nan_loss_stops_training_before_the_weights_change(tmp_path):
    class Poisoned(VocabularyHalfTask):
        def loss(self, model, batch):
            loss = super().loss(model, batch)
            return loss * float("nan") if batch["input_ids"].shape[0] and self.calls() == 3 else loss

        def calls(self, count=[0]):
            count[0] += 1
            return count[0]

    trainer = FinetuneTrainer(Poisoned(), FinetuneConfig(out_dir=tmp_path, epochs=1, lr=5e-3, quiet=True))
    with pytest.raises(TrainingDiverged, match="step 3: the loss is nan"):
        trainer.train()
    assert trainer.step == 2 and all(torch.isfinite(p).all() for p in trainer.model.parameters())


class HuggingFaceModel(torch.nn.Module):
    """transformers' model behind the trainer's calls (as benchmarks/finetune_bench.py wraps it)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, **inputs):
        return self.model(**inputs)

    def save_pretrained(self, folder, overwrite=False):
        self.model.save_pretrained(folder)


def test_the_trainer_takes_a_transformers_model_to_the_same_weights(transformers_lib, tmp_path):
    """The benchmark's premise: one trainer, the same batches and initial weights, and without dropout the
    two models end where rounding lets them (the weights move by about 1e-2)."""
    config = dataclasses.replace(TINY, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    ours = BertForSequenceClassification(config)
    theirs = transformers_lib.BertForSequenceClassification(transformers_lib.BertConfig(**config.to_dict()))
    theirs.load_state_dict(ours.state_dict())
    initial = {k: v.clone() for k, v in ours.state_dict().items()}
    run(tmp_path / "ours", model=ours, epochs=1)
    run(tmp_path / "theirs", model=HuggingFaceModel(theirs), epochs=1)
    moved = max((ours.state_dict()[k] - initial[k]).abs().max().item() for k in initial)
    assert moved > 5e-3
    for name, tensor in theirs.state_dict().items():
        assert_close(ours.state_dict()[name], tensor, atol=2e-5, rtol=0, msg=name)
