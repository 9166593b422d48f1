"""Reading and writing Hugging Face BERT folders: config.json, model.safetensors or pytorch_model.bin.

Lecture 1.1 (what a pre-trained model is); notebook notebooks/02_attention_and_encoder.ipynb.
minibert's module names are Hugging Face's, so the mapping between a checkpoint and a model is short and
explicit (`to_model_names`): old LayerNorm names, a buffer that old checkpoints saved, and the `bert.`
prefix that models with a head put in front of the encoder. Everything else must match name for name and
shape for shape, or loading stops with a list of what differs.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

from .output_folder import remove_interrupted_saves

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
LEGACY_SUFFIXES = {".gamma": ".weight", ".beta": ".bias"}  # LayerNorm names of TF-converted checkpoints
SAVED_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")  # buffers, not weights: not loaded


class CheckpointMismatchError(ValueError):
    """The checkpoint's weights do not fit the model built from its config."""


def read_state_dict(folder: str | Path) -> dict[str, Tensor]:
    """All tensors of a checkpoint folder, loaded safely (safetensors, or torch.load with weights_only)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder. Pass the folder that holds config.json and "
                                f"{' or '.join(WEIGHT_FILES)} (a Hugging Face BERT checkpoint).")
    for name in WEIGHT_FILES:
        shards = weight_shards(folder, name)
        if shards:
            state_dict = {key: tensor for shard in shards for key, tensor in _read_file(shard).items()}
            warn_if_vocabulary_is_smaller(folder, state_dict)
            return state_dict
    raise FileNotFoundError(f"{folder} has no weights: expected {' or '.join(WEIGHT_FILES)} "
                            f"(found: {', '.join(sorted(p.name for p in folder.iterdir())) or 'nothing'}).")


def weight_shards(folder: Path, name: str) -> list[Path]:
    """[folder/name], or the shards that folder/name.index.json lists for a checkpoint saved in pieces."""
    if (folder / name).is_file():
        return [folder / name]
    index = folder / f"{name}.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (ValueError, KeyError, AttributeError) as err:
            raise ValueError(f"{index} is not a weight index (JSON with a \"weight_map\" of names to files; "
                             f"{type(err).__name__}: {err}): download or save the checkpoint again.") from None
        return [folder / shard for shard in shards]
    return []


def _read_file(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            return load_file(path)
        except Exception as err:  # a truncated download, a file of another format
            raise ValueError(f"could not read the weights in {path} ({type(err).__name__}: {err}). The file is "
                             "corrupt, incomplete or not a safetensors file: download or save it again.") from None
    state_dict = load_pickled_tensors(path, "the weights")
    if not isinstance(state_dict, dict) or not all(isinstance(v, Tensor) for v in state_dict.values()):
        got = type(state_dict).__name__ if not isinstance(state_dict, dict) else "a dict with other values in it"
        raise ValueError(f"{path} holds {_article(got)}, not a state dict (a dict of weight names to tensors, "
                         "as model.state_dict() gives): save it with torch.save(model.state_dict(), path).")
    return state_dict


def load_pickled_tensors(path: Path, what: str):
    """torch.load that unpickles plain data only (tensors, numbers, strings, lists, dicts): never code."""
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it may not support
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # PyTorch's message suggests weights_only=False, which would run whatever code the file carries: a student
        # must never be told that, so its text is not passed on (not even as the cause of this error)
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        refers = f" (it refers to {found[1]})" if found else ""
        raise ValueError(f"refused to read {what} in {path}: the file holds more than tensors and plain data"
                         f"{refers}, and unpickling it could run code. minibert reads only plain weights; ask for "
                         "the model as model.safetensors, or save it with torch.save(model.state_dict(), path).") \
            from None
    except Exception as err:  # a truncated download, a file of another format
        raise ValueError(f"could not read {what} in {path} ({type(err).__name__}: {err}). The file is corrupt, "
                         "incomplete or not a PyTorch file: download or save it again.") from None


def _article(name: str) -> str:
    return name if name.startswith("a ") else f"a {name}"


def warn_if_vocabulary_is_smaller(folder: Path, state_dict: dict[str, Tensor]) -> None:
    """A vocab.txt with fewer tokens than the embedding table has rows loads (the tokenizer never produces the
    ids past its end, which may be intended: rows kept free for tokens added later), but never silently."""
    vocab = folder / "vocab.txt"
    rows = [t.shape[0] for k, t in state_dict.items() if k.endswith("word_embeddings.weight") and t.dim() == 2]
    if not vocab.is_file() or not rows:
        return
    with vocab.open(encoding="utf-8", errors="replace") as lines:
        size = sum(1 for _ in lines)
    if size < rows[0]:
        warnings.warn(f"{vocab} has {size:,} tokens but the word-embedding table has {rows[0]:,} rows: the "
                      f"tokenizer never produces ids {size:,} to {rows[0] - 1:,}, so those rows are never used. "
                      "Fine if intended (rows kept for added tokens); otherwise vocab.txt belongs to another "
                      "model.", stacklevel=3)


def to_model_names(state_dict: dict[str, Tensor], model_keys: set[str], prefix: str) -> dict[str, Tensor]:
    """Rename a checkpoint's keys to the model's: the whole mapping from Hugging Face names to minibert's."""
    renamed = {}
    for key, tensor in state_dict.items():
        for old, new in LEGACY_SUFFIXES.items():
            if key.endswith(old) and "LayerNorm" in key:
                key = key[: -len(old)] + new
        if key.endswith(SAVED_BUFFERS):
            continue
        renamed[key] = tensor
    model_has_prefix = any(k.startswith(prefix + ".") for k in model_keys)
    checkpoint_has_prefix = any(k.startswith(prefix + ".") for k in renamed)
    if checkpoint_has_prefix and not model_has_prefix:  # an encoder read out of a model with heads
        renamed = {k[len(prefix) + 1:] if k.startswith(prefix + ".") else k: v for k, v in renamed.items()}
    elif model_has_prefix and not checkpoint_has_prefix:  # a bare encoder loaded under a model with heads
        renamed = {f"{prefix}.{k}": v for k, v in renamed.items()}
    return renamed


def load_weights(model: nn.Module, state_dict: dict[str, Tensor]) -> list[str]:
    """Copy a checkpoint into `model`, asserting names and shapes; returns the names left at their fresh init.

    Allowed to differ: weights tied to another (`model.tied_weights`), new task heads a base checkpoint cannot
    have (`model.fresh_prefixes`), and checkpoint heads the model does not use (`model.ignored_prefixes`).
    """
    expected = model.state_dict()
    state_dict = to_model_names(state_dict, set(expected), model.base_model_prefix)
    tied = set(getattr(model, "tied_weights", {}))
    fresh = tuple(getattr(model, "fresh_prefixes", ()))
    ignored = tuple(getattr(model, "ignored_prefixes", ()))

    missing = [k for k in expected if k not in state_dict and k not in tied]
    missing_required = [k for k in missing if not k.startswith(fresh)] if fresh else missing
    unexpected = [k for k in state_dict if k not in expected and not (ignored and k.startswith(ignored))]
    mis_shaped = [(k, tuple(v.shape), tuple(expected[k].shape))
                  for k, v in state_dict.items() if k in expected and v.shape != expected[k].shape]
    if missing_required or unexpected or mis_shaped:
        raise CheckpointMismatchError(_mismatch_report(missing_required, unexpected, mis_shaped, expected, state_dict))
    with torch.no_grad():
        for key, tensor in state_dict.items():
            if key in expected:
                expected[key].copy_(tensor)
    return [k for k in missing if k not in tied]


# config.json fields that the shape of a weight shows: (the end of the weight's name, which dimension)
SHAPE_FIELDS = {"vocab_size": ("embeddings.word_embeddings.weight", 0),
                "hidden_size": ("embeddings.word_embeddings.weight", 1),
                "max_position_embeddings": ("embeddings.position_embeddings.weight", 0),
                "type_vocab_size": ("embeddings.token_type_embeddings.weight", 0),
                "intermediate_size": ("layer.0.intermediate.dense.weight", 0)}
LAYER = re.compile(r"encoder\.layer\.(\d+)\.")
SHOWN = 20  # names listed per kind of difference


def _mismatch_report(missing, unexpected, mis_shaped, expected, state_dict) -> str:
    lines = ["the checkpoint does not fit the model built from its config.json:"]
    if missing:
        lines.append(f"missing from the checkpoint ({len(missing)}): " +
                     _listed([f"{k} {tuple(expected[k].shape)}" for k in missing]))
    if unexpected:
        lines.append(f"in the checkpoint but not in the model ({len(unexpected)}): " + _listed(unexpected))
    if mis_shaped:
        lines.append(f"wrong shape, checkpoint vs model ({len(mis_shaped)}): " +
                     _listed([f"{k} {got} vs {want}" for k, got, want in mis_shaped]))
    differing = config_differences(state_dict, expected)
    if differing and set(differing) != {"vocab_size"}:
        lines.append("config.json does not describe these weights: " + "; ".join(
            f"{field} is {want} in config.json but {got} in the weights" for field, (got, want) in differing.items()) +
            ". Use the config.json that came with the weights (or set these fields to the weights' values).")
    elif differing:
        lines.append("the word-embedding table has another size: the vocabulary of this checkpoint is not the "
                     "one its config.json describes; use the config.json and vocab.txt that came with the weights.")
    else:
        lines.append("Check that config.json belongs to these weights, and that the model class fits the checkpoint.")
    return "\n  ".join(lines)


def config_differences(state_dict: dict[str, Tensor], expected: dict[str, Tensor]) -> dict[str, tuple[int, int]]:
    """{config field: (value the weights show, value of the model's config)} for every field that differs."""
    differing = {}
    for field, (suffix, dim) in SHAPE_FIELDS.items():
        got = [t.shape[dim] for k, t in state_dict.items() if k.endswith(suffix) and t.dim() > dim]
        want = [t.shape[dim] for k, t in expected.items() if k.endswith(suffix) and t.dim() > dim]
        if got and want and got[0] != want[0]:
            differing[field] = (got[0], want[0])
    got, want = (len({m[1] for k in keys if (m := LAYER.search(k))}) for keys in (state_dict, expected))
    if got and want and got != want:
        differing["num_hidden_layers"] = (got, want)
    return differing


def _listed(names: list[str]) -> str:
    more = f" ... and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def write_weights(state_dict: dict[str, Tensor], folder: Path, overwrite: bool) -> Path:
    """Write model.safetensors atomically: a crash mid-write leaves the old file, never a broken one."""
    from safetensors.torch import save_file

    target = folder / "model.safetensors"
    refuse_to_overwrite(target, overwrite)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    return target


def refuse_to_overwrite(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists and minibert does not overwrite saved work silently. "
                              "Choose another folder, or pass overwrite=True to replace it.")


@contextmanager
def atomic_path(target: Path):
    """`with atomic_path(target) as tmp:` write to tmp; on success tmp replaces target in one rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_interrupted_saves(target.parent, target.name)  # what earlier saves of this file left when killed
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; a saved model is meant to be shared
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomically(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
