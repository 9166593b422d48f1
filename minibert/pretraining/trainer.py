"""The pre-training loop: batches in, AdamW steps out, with the care a long run needs.

Lecture lectures/pretraining.md, sections "The training loop" and "Checkpoints and resuming"; notebook
notebooks/03_pretraining.ipynb. One optimizer step:
  1. take this process's micro-batches of the step (data.py), and count the labelled tokens of the whole
     step over all processes;
  2. forward each micro-batch with MLM logits at the labelled positions only, and backward
     (sum of the token losses / all labelled tokens of the step): the gradient of the step's mean loss,
     however the step is split into micro-batches (accumulation) or processes (DDP);
  3. stop if the loss or the gradient is NaN or infinite, before the weights are touched;
  4. clip the gradient norm, AdamW step, scheduler step.
Every `eval_every` steps the model is scored on held-out text, every `save_every` steps a checkpoint is
written (training_state.py), and the output folder always holds the latest model in Hugging Face's format.
"""
from __future__ import annotations

import json
import math
import signal
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import atomic_path
from ..output_folder import remove_interrupted_saves
from ..progress import Progress
from . import distributed
from .data import PretrainingData
from .evaluate import evaluate, forward, loss_sums
from .optim import make_optimizer, make_scheduler
from .plot import plot_loss_curves
from .training_state import CHECKPOINT_FILE, load_checkpoint, rng_state, save_checkpoint, set_rng_state


@dataclass
class TrainingConfig:
    out_dir: str | Path
    steps: int | None = None        # optimizer steps; the schedule ends there. None: fit them to `minutes`
    minutes: float | None = None    # stop (with a checkpoint) after this much time in this invocation
    accumulation: int = 1           # micro-batches per step: a big batch on a small machine
    lr: float = 5e-4
    warmup: float = 0.06            # share of the steps spent warming up
    weight_decay: float = 0.01
    adam_beta2: float = 0.999      # 0.98 (RoBERTa) forgets old gradient scales sooner: steadier at high lr
    max_grad_norm: float = 1.0      # 0 turns clipping off
    nsp_weight: float = 1.0         # objective = MLM loss + nsp_weight x NSP loss (BERT: 1); "loss" in the
                                    # history stays MLM + NSP, so that runs with other weights compare
    seed: int = 0
    eval_every: int = 100
    eval_examples: int = 1024
    save_every: int = 100
    device: str = "auto"
    bf16: bool = False              # bfloat16 autocast: faster on recent CPUs and GPUs, slightly less exact
    export_model: bool = True       # write config.json + model.safetensors beside each checkpoint
    quiet: bool = False             # no progress bar and no messages (tests)

    def __post_init__(self):
        if self.steps is None and self.minutes is None:
            raise ValueError("say how long to train: steps (optimizer steps), minutes, or both.")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be at least 1; got {self.steps}.")


class TrainingDiverged(RuntimeError):
    """The loss or the gradient became NaN or infinite; the weights were not updated with it."""


class Pretrainer:
    def __init__(self, model: nn.Module, data: PretrainingData, config: TrainingConfig,
                 eval_data: PretrainingData | None = None, runtime: distributed.Runtime | None = None,
                 extra_state: dict | None = None):
        self.config, self.data = config, data
        self.runtime = runtime or distributed.start(config.device)
        self.model = model.to(self.runtime.device).train()
        self.trained_model = distributed.wrap(self.model, self.runtime)  # what forward goes through
        self.optimizer = make_optimizer(self.model, config.lr, config.weight_decay, betas=(0.9, config.adam_beta2))
        self.scheduler = None  # made once the number of steps is known
        self.out = Path(config.out_dir)
        self.step, self.total_steps, self.seconds, self.tokens = 0, config.steps, 0.0, 0
        self.history, self.evaluations, self.last_saved_step = [], [], None
        self.eval_batches = eval_data.fixed_batches(config.eval_examples) if eval_data and self.runtime.is_main else []
        self.extra_state = extra_state or {}  # saved in the checkpoint: the CLI keeps its arguments there
        torch.manual_seed(config.seed + self.runtime.rank)  # dropout differs between processes

    # ----- resuming -----
    def resume(self, path: str | Path | None = None) -> None:
        """Continue from a checkpoint: weights, optimizer, scheduler, random state, step and history."""
        state = load_checkpoint(path or self.out / CHECKPOINT_FILE)
        if self.runtime.is_main:
            remove_interrupted_saves(self.out)  # what saves killed half-way left beside the checkpoint
        self.model.load_state_dict(state["model"])
        self.total_steps = state["total_steps"]
        self._make_scheduler()  # before loading the optimizer: a new scheduler resets the learning rate
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.seconds, self.tokens = state["step"], state["seconds"], state["tokens"]
        self.history, self.evaluations = state["history"], state["evaluations"]
        self.last_saved_step = self.step
        if len(state["rng"]) == self.runtime.world_size:
            set_rng_state(state["rng"][self.runtime.rank])
        else:
            self._say(f"the checkpoint was written by {len(state['rng'])} processes, this run has "
                      f"{self.runtime.world_size}: the data continues exactly, dropout draws from a new seed.")
            torch.manual_seed(self.config.seed + self.step + self.runtime.rank)

    # ----- the loop -----
    def train(self, until_step: int | None = None) -> dict:
        """Train to `total_steps`, or until `minutes` run out, or until `until_step` (the schedule still
        runs to total_steps: a later call continues it). Returns {"history": ..., "evaluations": ...}."""
        config, runtime = self.config, self.runtime
        if self.total_steps is None:
            self.total_steps = self._fit_steps_to_minutes()
        if self.scheduler is None:
            self._make_scheduler()
        if runtime.distributed:
            backend = torch.distributed.get_backend()
            self._say(f"DistributedDataParallel over {runtime.world_size} processes ({backend}), "
                      f"{self.data.batch_size // runtime.world_size} examples each per step")
        progress = Progress(self.total_steps, "pretrain") if runtime.is_main and not config.quiet else None
        if progress:
            progress.count = self.step
        started, tokens_at_start = time.perf_counter(), self.tokens
        with stop_on_first_ctrl_c() as interrupted:
            while self.step < min(self.total_steps, until_step or self.total_steps):
                out_of_time = config.minutes is not None and time.perf_counter() - started > 60 * config.minutes
                stats = self._train_step(stop=out_of_time or interrupted())
                if stats is None:
                    self._say(f"stopping at step {self.step} ({'time is up' if out_of_time else 'Ctrl-C'}); "
                              f"resume with --resume.")
                    break
                self.step += 1
                self.seconds += stats.pop("step_seconds")
                self.tokens += stats["tokens"]
                self.history.append({"step": self.step, **stats, "seconds": self.seconds})
                if progress:
                    rate = (self.tokens - tokens_at_start) / max(time.perf_counter() - started, 1e-9)
                    progress.update(1, loss=stats["loss"], mlm_acc=stats["mlm_accuracy"], **{"tok/s": rate})
                if config.eval_every and self.step % config.eval_every == 0:
                    self._evaluate()
                if config.save_every and self.step % config.save_every == 0:
                    self._save()
        if progress:
            progress.close()
        if self.eval_batches and (not self.evaluations or self.evaluations[-1]["step"] != self.step):
            self._evaluate()
        if self.last_saved_step != self.step:
            self._save()
        return {"history": self.history, "evaluations": self.evaluations}

    def _train_step(self, stop: bool) -> dict | None:
        """One optimizer step over this process's micro-batches; None if any process asked to stop."""
        config, runtime = self.config, self.runtime
        begin = time.perf_counter()
        batches = self.data.micro_batches(self.step, config.accumulation, runtime.rank, runtime.world_size)
        n_targets, n_pairs, stops = self._sum([sum(b.num_targets for b in batches),
                                               sum(len(b.next_sentence_label) for b in batches), float(stop)])
        if stops:
            return None
        sums = torch.zeros(5, dtype=torch.float64)  # MLM loss, MLM hits, NSP loss, NSP hits, tokens
        for k, batch in enumerate(batches):
            batch = batch.to(runtime.device)
            with self._gradient_sync(last=k == len(batches) - 1):
                with self._autocast():
                    step_sums = loss_sums(forward(self.trained_model, batch), batch)
                # DDP averages gradients over processes; x world_size turns that average back into the sum
                objective = step_sums[0] / n_targets + config.nsp_weight * step_sums[2] / n_pairs
                loss = objective * runtime.world_size
                loss.backward()
            sums[:4] += step_sums.detach().double().cpu()
            sums[4] += batch.num_tokens
        mlm_loss, mlm_hits, nsp_loss, nsp_hits, tokens = self._sum(sums.tolist())
        loss = mlm_loss / n_targets + nsp_loss / n_pairs
        if not math.isfinite(loss):
            self._diverged(f"the loss is {loss}")
        max_norm = config.max_grad_norm if config.max_grad_norm > 0 else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))
        if not math.isfinite(grad_norm):
            self._diverged(f"the gradient norm is {grad_norm}")
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss": loss, "mlm_loss": mlm_loss / n_targets, "nsp_loss": nsp_loss / n_pairs,
                "mlm_accuracy": mlm_hits / n_targets, "nsp_accuracy": nsp_hits / n_pairs, "lr": lr,
                "grad_norm": grad_norm, "tokens": int(tokens), "step_seconds": time.perf_counter() - begin}

    def _diverged(self, what: str) -> None:
        kept = (f"The last good checkpoint (step {self.last_saved_step}) is {self.out / CHECKPOINT_FILE}"
                if self.last_saved_step is not None else "No checkpoint had been written yet")
        raise TrainingDiverged(
            f"training stopped at step {self.step + 1}: {what}, so the weights were not updated. {kept}. "
            f"Try a smaller learning rate (now {self.config.lr:g}), a longer warm-up, gradient clipping "
            f"(--clip 1.0), or training without --bf16; then --resume.")

    # ----- evaluation, checkpoints, output -----
    def _evaluate(self) -> None:
        if not self.runtime.is_main or not self.eval_batches:
            return
        result = evaluate(self.model, self.eval_batches, self.runtime.device, self.config.bf16)
        self.evaluations.append({"step": self.step, "seconds": self.seconds, **result.as_dict()})
        self._say(f"step {self.step}: held-out MLM accuracy {result.mlm_accuracy:.3f}, NSP accuracy "
                  f"{result.nsp_accuracy:.3f}, perplexity {result.perplexity:.1f}, loss {result.loss:.3f}")

    def _save(self) -> None:
        """Every process hands over its random state; process 0 writes the checkpoint, then the model."""
        rngs = distributed.gather_objects(rng_state(), self.runtime)
        if self.runtime.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            remove_interrupted_saves(self.out)
            save_checkpoint(self.out / CHECKPOINT_FILE, {
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "step": self.step, "total_steps": self.total_steps,
                "seconds": self.seconds, "tokens": self.tokens, "rng": rngs, "history": self.history,
                "evaluations": self.evaluations, "extra": self.extra_state})
            if self.config.export_model and hasattr(self.model, "save_pretrained"):
                self.model.save_pretrained(self.out, overwrite=True)
            with atomic_path(self.out / "history.json") as tmp:
                tmp.write_text(json.dumps({"history": self.history, "evaluations": self.evaluations}))
            plot_loss_curves({"minibert": {"history": self.history, "evaluations": self.evaluations}},
                             self.out / "loss_curve.png")
        self.last_saved_step = self.step
        distributed.barrier(self.runtime)

    # ----- helpers -----
    def _make_scheduler(self) -> None:
        warmup_steps = max(1, round(self.config.warmup * self.total_steps))
        self.scheduler = make_scheduler(self.optimizer, warmup_steps, self.total_steps)

    def _fit_steps_to_minutes(self) -> int:
        """Count the steps that fit in `minutes`: every step of the data's early stages (StagedData), then as
        many of the last stage as the time left allows, each stage timed on its own first batches."""
        budget = 0.85 * 60 * self.config.minutes  # 15% for optimizer steps, evaluations and checkpoints
        steps, timings = 0, []
        for first_step, stage_steps, data in self.data.timed_stages():
            per_step = self._seconds_per_step(first_step, data)
            timings.append(f"{per_step:.2f} s per step of {data.max_length} tokens")
            if stage_steps is None or budget < stage_steps * per_step:
                steps += int(budget / per_step)
                break
            steps, budget = steps + stage_steps, budget - stage_steps * per_step
        steps = max(1, steps)
        self._say(f"about {', '.join(timings)}: {steps} steps fit in {self.config.minutes:g} minutes.")
        return steps

    def _seconds_per_step(self, first_step: int, data) -> float:
        """Time forward + backward on a stage's first batches (no update; the first pass warms up caches, five
        more are timed: batches of one stage differ in length, and two were too few to average it out)."""
        cpu_rng = torch.get_rng_state()
        seconds = tokens = 0.0
        for step in range(6):
            begin = time.perf_counter()
            for batch in self.data.micro_batches(first_step + step, self.config.accumulation, self.runtime.rank,
                                                 self.runtime.world_size):
                batch = batch.to(self.runtime.device)
                with self._autocast():
                    step_sums = loss_sums(forward(self.trained_model, batch), batch)
                step_sums[0].backward()
                if step:
                    tokens += batch.input_ids.numel()
            if step:
                seconds += time.perf_counter() - begin
        self.optimizer.zero_grad(set_to_none=True)
        torch.set_rng_state(cpu_rng)
        per_step = seconds / tokens * data.mean_padded_tokens() / self.runtime.world_size
        return self._sum([per_step])[0] / self.runtime.world_size

    def _sum(self, values: list[float]) -> list[float]:
        """Sum over processes (gloo reduces CPU tensors, NCCL GPU tensors)."""
        dtype = torch.float64 if self.runtime.device.type == "cpu" else torch.float32
        return distributed.sum_over_processes(torch.tensor(values, dtype=dtype, device=self.runtime.device),
                                              self.runtime).tolist()

    def _gradient_sync(self, last: bool):
        """Under DDP, gradients are all-reduced only after the last micro-batch of a step."""
        return nullcontext() if last or not self.runtime.distributed else self.trained_model.no_sync()

    def _autocast(self):
        if not self.config.bf16:
            return nullcontext()
        return torch.autocast(self.runtime.device.type, dtype=torch.bfloat16)

    def _say(self, message: str) -> None:
        if self.runtime.is_main and not self.config.quiet:
            print(("\n" if sys.stderr.isatty() else "") + message, file=sys.stderr, flush=True)


@contextmanager
def stop_on_first_ctrl_c():
    """The first Ctrl-C asks the loop to stop after the current step (and write a checkpoint); the
    second one stops at once. Yields a function that says whether Ctrl-C was pressed."""
    pressed = []

    def handler(signum, frame):
        if pressed:
            raise KeyboardInterrupt
        pressed.append(True)
        print("\nCtrl-C: stopping after this step and writing a checkpoint (press again to abort).",
              file=sys.stderr, flush=True)

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave Ctrl-C alone
        previous = None
    try:
        yield lambda: bool(pressed)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
