"""Output folders: a command writes only where it loses nothing that someone saved.

Lecture lectures/pretraining.md, section "Checkpoints and resuming"; used by every command that writes a model
(`python -m minibert pretrain`, and fine-tuning after it). The rules, checked before any work starts:
- a new or empty folder is written into;
- a folder that holds this command's own run (`run_file`, e.g. checkpoint.pt) is continued with --resume;
- any other folder that holds files (a model, someone's notes) is refused, unless --overwrite is given; then
  the old model's files are removed first, so that none of them contradicts the new model (a stale
  tokenizer.json beside a new vocab.txt makes transformers read the wrong vocabulary). Files that are not
  part of a model are left where they are;
- the folder the command reads its starting weights or vocabulary from (--init, --tokenizer) is never the
  one it writes to.
Temporary files of saves that were killed half-way (`checkpoint.atomic_path`) are removed on the next save
or resume of the folder.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

# Every file of a Hugging Face (and sentence-transformers) model folder that describes the model: after an
# overwrite, any of them left from the old model would contradict the new one.
MODEL_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
               "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack", "generation_config.json",
               "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
               "added_tokens.json", "training_args.bin", "modules.json", "config_sentence_transformers.json",
               "sentence_bert_config.json")
MODEL_PATTERNS = (re.compile(r"(model|pytorch_model)-\d+-of-\d+\.(safetensors|bin)"),  # shards
                  re.compile(r"\d+_(Pooling|Dense|Normalize)"))  # sentence-transformers' module folders
# checkpoint.atomic_path writes `.<name>.<8 random characters>.tmp` and renames it; a kill leaves it behind
TEMPORARY = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp")


class OutputFolderError(ValueError):
    """Writing into this folder would lose something, or cannot be what the user meant."""


def check_output_folder(folder: str | Path, *, overwrite: bool = False, resume: bool = False,
                        run_file: str | None = None, writes: tuple[str, ...] = (),
                        inputs: dict[str, str | Path | None] | None = None, option: str = "--out") -> list[Path]:
    """Raise OutputFolderError unless the command may write into `folder`; return what to remove first.

    run_file: the file that marks the command's own run (what --resume continues); writes: the other files
    the command writes (removed too on --overwrite); inputs: {"--init": folder, ...} the command reads from.
    Changes nothing: `clear_output_folder(folder, returned)` does, once (one process of a distributed run).
    """
    folder = Path(folder)
    for name, source in (inputs or {}).items():
        if source is not None and same_folder(source, folder):
            raise OutputFolderError(f"{name} and {option} are the same folder ({folder}): the run would write over "
                                    f"what it reads. Choose another {option}.")
    if overwrite and resume:
        raise OutputFolderError("--resume continues the run in the folder and --overwrite replaces it: "
                                "give one of them.")
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"{option} {folder} is a file; expected a folder to write into.")
    if resume:
        if run_file is None or not (folder / run_file).is_file():
            where = f"{folder} holds no {run_file}" if folder.is_dir() else f"{folder} does not exist"
            raise OutputFolderError(f"nothing to resume: {where} (--resume continues a run "
                                    f"that an earlier command wrote into the same {option}). Leave out --resume "
                                    "to start a new run.")
        return interrupted_saves(folder)
    present = sorted(p for p in folder.iterdir() if not TEMPORARY.fullmatch(p.name)) if folder.is_dir() else []
    if not present:
        return interrupted_saves(folder)
    if not overwrite:
        if run_file and (folder / run_file).is_file():
            raise OutputFolderError(f"{folder} already holds a run ({folder / run_file}). Add --resume to continue "
                                    f"it, --overwrite to start a new one there, or choose another {option}.")
        what = "a model" if any(is_model_file(p.name) for p in present) else "files"
        raise OutputFolderError(f"{folder} already holds {what} that this command did not write "
                                f"({_names(present)}); it would be overwritten. Choose another {option} (a new "
                                f"or empty folder), or add --overwrite to replace it.")
    own = set(writes) | ({run_file} if run_file else set())
    return [p for p in present if is_model_file(p.name) or p.name in own] + interrupted_saves(folder)


def clear_output_folder(folder: str | Path, stale: list[Path]) -> list[str]:
    """Remove what `check_output_folder` returned; the names removed (temporary files aside)."""
    removed = []
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        if not TEMPORARY.fullmatch(path.name):
            removed.append(path.name)
    return removed


def is_model_file(name: str) -> bool:
    return name in MODEL_FILES or any(pattern.fullmatch(name) for pattern in MODEL_PATTERNS)


def interrupted_saves(folder: str | Path, target: str | None = None) -> list[Path]:
    """The temporary files that killed saves left in `folder` (of one `target` file name, or of all)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if (m := TEMPORARY.fullmatch(p.name)) and p.is_file()
             and (target is None or m["target"] == target)]
    return sorted(found)


def remove_interrupted_saves(folder: str | Path, target: str | None = None) -> int:
    """Delete them; the bytes freed. One writer per folder: a save running in another process at this moment
    would lose its temporary file (and fail, leaving the previous file intact)."""
    freed = 0
    for path in interrupted_saves(folder, target):
        try:
            size = path.stat().st_size
            path.unlink()
            freed += size
        except FileNotFoundError:  # removed by someone else meanwhile
            pass
    return freed


def same_folder(a: str | Path, b: str | Path) -> bool:
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _names(paths: list[Path], shown: int = 6) -> str:
    names = [p.name + ("/" if p.is_dir() else "") for p in paths]
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
