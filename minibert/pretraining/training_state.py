"""The training checkpoint: everything an interrupted run needs to continue as if it had never stopped.

Lecture lectures/pretraining.md, section "Checkpoints and resuming"; notebook notebooks/03_pretraining.ipynb.
One file, `checkpoint.pt`: the weights, AdamW's moments, the scheduler's position, every process's random
state, the step and the history. It is written to a temporary file and renamed over the old one, and a
rename is all-or-nothing: a crash, a full disk or Ctrl-C mid-write leaves the previous checkpoint intact.
The data needs no state of its own: batches are a function of the seed and the step (data.py).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import atomic_path, load_pickled_tensors

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "step", "total_steps", "rng", "history")


def rng_state() -> dict:
    """The random state that dropout draws from, on the CPU and on every GPU."""
    return {"cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write `state` (tensors, numbers, strings, lists and dicts of them) atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: --resume continues a run from the {CHECKPOINT_FILE} "
                                "that an earlier run wrote into the same --out folder.")
    state = load_pickled_tensors(path, "the training checkpoint")
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise ValueError(f"{path} is not a minibert training checkpoint (it has no {', '.join(missing)}); "
                         "start the run again without --resume, in a new --out folder.")
    return state
