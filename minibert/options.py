"""Command-line options that are checked before any work starts: one set of argparse `type=` helpers for every command.

Used by `python -m minibert pretrain` (lectures/pretraining.md, section "Pre-training from the command line"),
the benchmarks, and every command that comes after them. Each helper is an argparse `type=`: argparse calls it on
the text the user typed, and when it raises `argparse.ArgumentTypeError`, argparse itself names the option, so one
line says the option, the value and what is allowed, and the command stops with exit code 2:

    python -m minibert pretrain: error: argument --mlm-probability: expected a number in (0, 1), got 1.5

    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--dropout", type=probability(one=False))          # [0, 1)
    parser.add_argument("--corpus", type=text_file, nargs="+")           # exists, a file, not empty, UTF-8
    parser.add_argument("--init", type=model_folder)                      # config.json and weights

Checks that involve two options (--init and --out the same folder, --batch-size divisible by --accumulation)
go in the command's `check_arguments(args)`, which `python -m minibert` calls right after parsing; it raises
`OptionError`, printed the same way. `Parser` is argparse's parser with that one-line error.
"""
from __future__ import annotations

import argparse
import codecs
import math
from pathlib import Path
from typing import Callable

from .checkpoint import WEIGHT_FILES, weight_shards


class OptionError(ValueError):
    """Options that cannot work together; `python -m minibert` prints it as a usage error (exit code 2)."""


class Parser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line (the usage of a command with 40 options would bury them)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n  ({self.prog} --help lists every option)\n")


# ----- numbers -----
def number_in(kind: type = float, low: float | None = None, high: float | None = None, *, low_open: bool = False,
              high_open: bool = False, what: str | None = None) -> Callable[[str], float]:
    """An argparse type: a `kind` (int or float) in [low, high], ( or ) for an open end, None for no bound."""
    what = what or ("a whole number" if kind is int else "a number")
    allowed = _interval(low, high, low_open, high_open)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} {allowed}, got {text!r}") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if not math.isfinite(value) or too_low or too_high:
            raise argparse.ArgumentTypeError(f"expected {what} {allowed}, got {text}")
        return value

    return parse


def _interval(low, high, low_open, high_open) -> str:
    if high is None:
        return f"{'greater than' if low_open else 'of at least'} {low:g}" if low is not None else "(any)"
    if low is None:
        return f"{'less than' if high_open else 'of at most'} {high:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def int_at_least(low: int) -> Callable[[str], int]:
    return number_in(int, low)


def probability(zero: bool = True, one: bool = True) -> Callable[[str], float]:
    """A probability or share; zero=False or one=False leave that end out: probability(zero=False) is (0, 1]."""
    return number_in(float, 0, 1, low_open=not zero, high_open=not one)


positive_int = number_in(int, 1)
non_negative_int = number_in(int, 0)
positive_float = number_in(float, 0, low_open=True)
non_negative_float = number_in(float, 0)
fraction = probability(one=False)  # a share of a whole that must leave some of it: [0, 1), e.g. warm-up steps


# ----- files and folders the user names -----
def existing_file(text: str) -> Path:
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; expected a file (the files inside it: {path}/*)")
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{path} does not exist{_near(path)}")
    try:
        with path.open("rb"):
            pass
    except OSError as err:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {err.strerror}") from None
    return path


def text_file(text: str) -> Path:
    """A file that exists, is not empty and is UTF-8 text; a byte that is not names its position and line."""
    path = existing_file(text)
    decoder = codecs.getincrementaldecoder("utf-8")()
    position, lines = 0, 0
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                raise argparse.ArgumentTypeError(_not_utf8(path, position, lines, chunk, err)) from None
            position, lines = position + len(chunk), lines + chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise argparse.ArgumentTypeError(f"{path} is not UTF-8 text: it ends in the middle of a character "
                                             "(cut short?); save it as UTF-8") from None
    if position == 0:
        raise argparse.ArgumentTypeError(f"{path} is empty; expected plain text")
    return path


def _not_utf8(path: Path, position: int, lines: int, chunk: bytes, err: UnicodeDecodeError) -> str:
    # err.object is the chunk behind the bytes of a character that the chunk before left unfinished
    start = position - (len(err.object) - len(chunk)) + err.start
    line = lines + err.object.count(b"\n", 0, err.start) + 1
    return (f"{path} is not UTF-8 text: byte {err.object[err.start]:#04x} at position {start:,} (line {line:,}) is "
            f"not valid UTF-8 (perhaps Latin-1 or Windows-1252); save it as UTF-8 (an editor's 'Save as', or "
            f"iconv -f latin1 -t utf-8)")


def existing_folder(text: str) -> Path:
    path = Path(text)
    if path.is_file():
        raise argparse.ArgumentTypeError(f"{path} is a file; expected a folder")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} does not exist{_near(path)}")
    return path


def model_folder(text: str) -> Path:
    """A Hugging Face BERT folder: config.json and model.safetensors or pytorch_model.bin (or their shards)."""
    path = existing_folder(text)
    needed = [] if (path / "config.json").is_file() else ["config.json"]
    if not any(weight_shards(path, name) for name in WEIGHT_FILES):
        needed.append(" or ".join(WEIGHT_FILES))
    if needed:
        raise argparse.ArgumentTypeError(f"{path} is not a model folder: it has no {' and no '.join(needed)}")
    return path


def vocabulary_folder(text: str) -> Path:
    """A folder with vocab.txt (a model folder, or one that `WordPieceTokenizer.save_pretrained` wrote)."""
    path = existing_folder(text)
    if not (path / "vocab.txt").is_file():
        raise argparse.ArgumentTypeError(f"{path} has no vocab.txt; expected a folder with a WordPiece vocabulary")
    text_file(str(path / "vocab.txt"))  # UTF-8, one token a line: an error here names the file and the byte
    return path


def output_folder(text: str) -> Path:
    """A folder to write into: new, or an existing folder (what may be written there is the command's
    business: see minibert/output_folder.py); never an existing file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file; expected a folder to write into")
    return path


def new_file(text: str) -> Path:
    """A file to write that does not exist yet: results people saved are never overwritten."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; expected the name of a file to write")
    if path.exists():
        raise argparse.ArgumentTypeError(f"{path} already exists; choose another name (it is not overwritten)")
    return path


def _near(path: Path) -> str:
    """Where the user might have meant: the nearest folder that exists, and the working directory."""
    parent = path.parent
    while not parent.is_dir() and parent != parent.parent:
        parent = parent.parent
    if not path.is_absolute():
        return f" (relative to the current folder {Path.cwd()})"
    return f" (nearest existing folder: {parent})"

