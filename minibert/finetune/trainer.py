"""The fine-tuning loop: one trainer for every task (classification, tagging, QA, distillation, the ways to fine-tune).

Lecture 2.2 (outputs) and 2.3 (how to fine-tune); the notebooks of section 2.2. The counterpart is
transformers' `Trainer` with `eval_strategy`, `load_best_model_at_end` and `EarlyStoppingCallback`; the
pieces come from pre-training (minibert/pretraining/): AdamW with a linear warm-up and decay (optim.py),
atomic checkpoints and exact resume (training_state.py), the stop on a NaN loss or gradient, DDP under torchrun
(distributed.py) and the progress line.

A task says four things (`Task`): its name and main metric, how to make the model, the batches of each epoch,
and how to score a model. The trainer does the rest:
  1. step through the epoch's batches (under torchrun each process takes its share of every batch's rows);
  2. loss -> backward -> stop on NaN -> clip -> AdamW step -> scheduler step;
  3. every epoch (or every `eval_every` steps) score the model; a better main metric saves it to OUT/best,
     `patience` evaluations without one stop training (early stopping);
  4. write OUT/checkpoint.pt (to resume), the latest model and history.json; at the end, metrics.png.
"""
from __future__ import annotations

import json
import math
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import Tensor, nn

from ..checkpoint import atomic_path
from ..pretraining import distributed
from ..pretraining.optim import make_optimizer, make_scheduler
from ..pretraining.trainer import TrainingDiverged, stop_on_first_ctrl_c
from ..pretraining.training_state import CHECKPOINT_FILE, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ..progress import Progress
from .plot import plot_finetuning

BEST_FOLDER = "best"
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "labels", "start_positions", "end_positions")


class Task:
    """What the trainer needs to know about a task. Subclasses set `name` and `main_metric` and write the
    three methods; `loss` and `save_files` have defaults.

    `train_batches(epoch)` must return the same batches for the same epoch every time it is asked (shuffle
    with a torch.Generator seeded from the seed and the epoch): that is what lets a resumed run continue
    exactly where it stopped, and two runs with one seed be identical.
    """

    name: str = "task"
    main_metric: str = "accuracy"  # a key of evaluate()'s dict; higher is better

    def make_model(self) -> nn.Module:
        raise NotImplementedError

    def train_batches(self, epoch: int) -> list[dict[str, Tensor]]:
        raise NotImplementedError

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """The training objective of one batch; distillation or an extra penalty would change it here."""
        return model(**model_inputs(batch)).loss

    def save_files(self, folder: Path) -> None:
        """Write what a saved model needs besides its weights (the vocabulary, the task's settings)."""


def model_inputs(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """The entries of a batch that the model's forward takes (a batch may carry more, e.g. word_ids)."""
    return {k: v for k, v in batch.items() if k in MODEL_INPUTS}


@dataclass
class FinetuneConfig:
    out_dir: str | Path
    epochs: float = 3.0             # passes over the training batches (0.4: the first 40% of one)
    max_steps: int | None = None    # stop (and end the schedule) here instead
    lr: float = 2e-5
    warmup: float = 0.1             # share of the steps spent warming up (BERT: 10%)
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0      # 0 turns clipping off
    seed: int = 0
    eval_every: int | None = None   # steps between evaluations; None: at the end of every epoch
    patience: int | None = None     # stop after this many evaluations without a better main metric
    save_every: int | None = None   # steps between checkpoints besides those after each evaluation
    device: str = "auto"
    bf16: bool = False
    plot: bool = True               # draw OUT/metrics.png when training ends
    quiet: bool = False

    def __post_init__(self):
        if self.epochs <= 0 and self.max_steps is None:
            raise ValueError(f"epochs must be positive; got {self.epochs}.")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience counts evaluations without improvement and must be at least 1; "
                             f"got {self.patience}. Leave it unset to train every epoch.")


@dataclass
class FinetuneResult:
    history: list[dict] = field(default_factory=list)      # one entry per step: loss, lr, grad_norm, tokens
    evaluations: list[dict] = field(default_factory=list)  # one entry per evaluation: step, epoch, metrics
    best_step: int | None = None
    best_metric: float | None = None
    stopped_early: bool = False


class FinetuneTrainer:
    def __init__(self, task: Task, config: FinetuneConfig, runtime: distributed.Runtime | None = None,
                 model: nn.Module | None = None, extra_state: dict | None = None):
        self.task, self.config = task, config
        self.runtime = runtime or distributed.start(config.device)
        torch.manual_seed(config.seed)  # the same fresh head in every process and in every run with this seed
        self.model = (model if model is not None else task.make_model()).to(self.runtime.device).train()
        self.trained_model = distributed.wrap(self.model, self.runtime)
        self.optimizer = make_optimizer(self.model, config.lr, config.weight_decay)
        self.out = Path(config.out_dir)
        first_epoch = task.train_batches(0)
        self.steps_per_epoch = len(first_epoch)
        if self.steps_per_epoch == 0:
            raise ValueError(f"the task {task.name!r} has no training batches: is the training file empty?")
        self.total_steps = config.max_steps or max(1, round(config.epochs * self.steps_per_epoch))
        warmup_steps = round(config.warmup * self.total_steps)
        self.scheduler = make_scheduler(self.optimizer, max(1, warmup_steps), self.total_steps)
        self.step, self.seconds, self.tokens, self.bad_evaluations = 0, 0.0, 0, 0
        self.result = FinetuneResult()
        self.last_saved_step = None
        self._epoch_batches: tuple[int, list] = (0, first_epoch)  # (epoch, its batches): asked for once an epoch
        self.extra_state = extra_state or {}  # saved in the checkpoint: the CLI keeps its arguments there
        torch.manual_seed(config.seed + 1 + self.runtime.rank)  # dropout: its own stream, different per process

    # ----- resuming -----
    def resume(self, path: str | Path | None = None) -> None:
        """Continue from a checkpoint: weights, AdamW's moments, the schedule, the random state, the step,
        the history and where early stopping stands."""
        state = load_checkpoint(path or self.out / CHECKPOINT_FILE)
        self.model.load_state_dict(state["model"])
        if state["total_steps"] != self.total_steps:
            raise ValueError(f"the checkpoint's schedule has {state['total_steps']} steps, this run {self.total_steps}:"
                             " resume with the data, batch size and epochs the run started with.")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.seconds, self.tokens = state["step"], state["seconds"], state["tokens"]
        self.bad_evaluations = state["bad_evaluations"]
        self.result = FinetuneResult(**{f.name: state[f.name] for f in fields(FinetuneResult)})
        self.last_saved_step = self.step
        rngs = state["rng"]
        set_rng_state(rngs[self.runtime.rank] if len(rngs) == self.runtime.world_size else rngs[0])

    # ----- the loop -----
    def train(self, until_step: int | None = None) -> FinetuneResult:
        """Train to the end of the schedule, to early stopping, or to `until_step` (then a later call, or a
        resumed trainer, continues the same schedule)."""
        config, runtime = self.config, self.runtime
        stop_at = min(self.total_steps, until_step or self.total_steps)
        progress = Progress(self.total_steps, f"finetune {self.task.name}") \
            if runtime.is_main and not config.quiet else None
        if progress:
            progress.count = self.step
        started, tokens_at_start = time.perf_counter(), self.tokens
        with stop_on_first_ctrl_c() as interrupted:
            while self.step < stop_at and not self.result.stopped_early:
                if self._any_process(interrupted()):
                    self._say(f"stopping at step {self.step} (Ctrl-C); resume with --resume.")
                    break
                stats = self._train_step(self._batch(self.step))
                self.step += 1
                self.seconds += stats.pop("step_seconds")
                self.tokens += stats["tokens"]
                self.result.history.append({"step": self.step, **stats, "seconds": self.seconds})
                if self._evaluation_due():
                    self._evaluate()
                    self._save()
                elif config.save_every and self.step % config.save_every == 0:
                    self._save()
                if progress:
                    rate = (self.tokens - tokens_at_start) / max(time.perf_counter() - started, 1e-9)
                    last = self.result.evaluations[-1][self.task.main_metric] if self.result.evaluations else None
                    shown = {} if last is None else {self.task.main_metric: float(last)}
                    progress.update(1, loss=stats["loss"], **shown, **{"tok/s": rate})
        if progress:
            progress.close()
        if self.last_saved_step != self.step:
            self._save()
        if self.runtime.is_main and config.plot:  # once at the end: drawing costs seconds on a busy CPU
            plot_finetuning(self.result.history, self.result.evaluations, self.task.main_metric,
                            self.out / "metrics.png", title=self.task.name)
        return self.result

    def _batch(self, step: int) -> dict[str, Tensor]:
        """Batch `step` of the run: the epoch's batches are asked for once per epoch, then indexed."""
        epoch, index = divmod(step, self.steps_per_epoch)
        if self._epoch_batches[0] != epoch:
            self._epoch_batches = (epoch, self.task.train_batches(epoch))
        return self._epoch_batches[1][index]

    def _train_step(self, batch: dict[str, Tensor]) -> dict:
        config, runtime = self.config, self.runtime
        begin = time.perf_counter()
        batch = {k: v.to(runtime.device) for k, v in shard(batch, runtime.rank, runtime.world_size).items()}
        with self._autocast():
            loss = self.task.loss(self.trained_model, batch)
        loss.backward()  # DDP averages the gradients of the processes' shares
        loss_value, tokens = self._sum([float(loss.detach()), float(batch["attention_mask"].sum())])
        loss_value /= runtime.world_size
        if not math.isfinite(loss_value):
            self._diverged(f"the loss is {loss_value}")
        max_norm = config.max_grad_norm if config.max_grad_norm > 0 else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))
        if not math.isfinite(grad_norm):
            self._diverged(f"the gradient norm is {grad_norm}")
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"epoch": (self.step + 1) / self.steps_per_epoch, "loss": loss_value, "lr": lr, "grad_norm": grad_norm,
                "tokens": int(tokens), "step_seconds": time.perf_counter() - begin}

    def _evaluation_due(self) -> bool:
        every = self.config.eval_every or self.steps_per_epoch
        return self.step % every == 0 or self.step == self.total_steps

    def _diverged(self, what: str) -> None:
        kept = (f"The last good checkpoint (step {self.last_saved_step}) is {self.out / CHECKPOINT_FILE}"
                if self.last_saved_step is not None else "No checkpoint had been written yet")
        raise TrainingDiverged(f"fine-tuning stopped at step {self.step + 1}: {what}, so the weights were not "
                               f"updated. {kept}. Try a smaller learning rate (now {self.config.lr:g}), a longer "
                               "warm-up, or training without --bf16.")

    # ----- evaluation, the best model, early stopping -----
    def _evaluate(self) -> None:
        """Process 0 scores the model; all processes learn whether training stops early."""
        stop = 0.0
        if self.runtime.is_main:
            self.model.eval()
            with torch.no_grad(), self._autocast():
                metrics = self.task.evaluate(self.model, self.runtime.device)
            self.model.train()
            if self.task.main_metric not in metrics:
                raise KeyError(f"the task {self.task.name!r} scores {sorted(metrics)} but its main metric is "
                               f"{self.task.main_metric!r}; evaluate() must return it.")
            value = float(metrics[self.task.main_metric])
            record = {"step": self.step, "epoch": self.step / self.steps_per_epoch, "seconds": self.seconds,
                      **{k: float(v) for k, v in metrics.items()}}
            self.result.evaluations.append(record)
            improved = self.result.best_metric is None or value > self.result.best_metric
            if improved:
                self.result.best_metric, self.result.best_step, self.bad_evaluations = value, self.step, 0
                self._save_best(record)
            else:
                self.bad_evaluations += 1
            patience = self.config.patience
            stop = float(patience is not None and self.bad_evaluations >= patience)
            self._say(f"step {self.step} (epoch {record['epoch']:.2f}): " +
                      ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) +
                      (" (best so far)" if improved else f" (best {self.result.best_metric:.4f} at step "
                                                         f"{self.result.best_step})") +
                      (f"; no better for {patience} evaluations: stopping early" if stop else ""))
        self.result.stopped_early = bool(self._sum([stop])[0])

    def _save_best(self, record: dict) -> None:
        folder = self.out / BEST_FOLDER
        self.model.save_pretrained(folder, overwrite=True)
        self.task.save_files(folder)
        with atomic_path(folder / "eval_results.json") as tmp:
            tmp.write_text(json.dumps({"task": self.task.name, **record}, indent=2) + "\n")

    # ----- checkpoints and output -----
    def _save(self) -> None:
        rngs = distributed.gather_objects(rng_state(), self.runtime)
        if self.runtime.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_checkpoint(self.out / CHECKPOINT_FILE, {
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "step": self.step, "total_steps": self.total_steps,
                "seconds": self.seconds, "tokens": self.tokens, "rng": rngs,
                "bad_evaluations": self.bad_evaluations, **asdict(self.result), "extra": self.extra_state})
            self.model.save_pretrained(self.out, overwrite=True)  # the latest model, beside OUT/best
            self.task.save_files(self.out)
            with atomic_path(self.out / "history.json") as tmp:
                tmp.write_text(json.dumps({"task": self.task.name, "main_metric": self.task.main_metric,
                                           **asdict(self.result)}))
        self.last_saved_step = self.step
        distributed.barrier(self.runtime)

    # ----- helpers -----
    def _sum(self, values: list[float]) -> list[float]:
        dtype = torch.float64 if self.runtime.device.type == "cpu" else torch.float32
        return distributed.sum_over_processes(torch.tensor(values, dtype=dtype, device=self.runtime.device),
                                              self.runtime).tolist()

    def _any_process(self, flag: bool) -> bool:
        return bool(self._sum([float(flag)])[0]) if self.runtime.distributed else flag

    def _autocast(self):
        if not self.config.bf16:
            return nullcontext()
        return torch.autocast(self.runtime.device.type, dtype=torch.bfloat16)

    def _say(self, message: str) -> None:
        if self.runtime.is_main and not self.config.quiet:
            print(("\n" if sys.stderr.isatty() else "") + message, file=sys.stderr, flush=True)


def shard(batch: dict[str, Tensor], rank: int, world_size: int) -> dict[str, Tensor]:
    """This process's rows of a batch (rows rank, rank + world_size, ...); the whole batch for one process."""
    if world_size == 1:
        return batch
    return {k: v[rank::world_size] for k, v in batch.items()}
