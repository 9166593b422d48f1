"""`python -m minibert <command>`: the demo, pre-training and the benchmarks.

Each command lives in its own module with `add_arguments(parser)` and `main(args)`, and may have
`check_arguments(args)` for checks that involve several options (minibert/options.py); this file only routes.
A mistake in the input (an option out of range, a file that is missing, not UTF-8 or not a model, an output
folder that holds someone's model) ends in one line that says what was expected, not in a traceback:
exit code 2 for the options, 1 for the files. `--debug` (or MINIBERT_DEBUG=1) shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .memory import keep_freed_memory
from .options import OptionError, Parser

COMMANDS = {
    "demo": ("minibert.demo", "tokenize, load real BERT weights and plot contextual embeddings"),
    "pretrain": ("minibert.pretraining.cli", "pre-train a BERT with MLM and NSP on raw text"),
    "bench": ("minibert.bench.cli", "benchmarks: speed (minibert vs transformers) and pre-training"),
    "generate": ("minibert.seq2seq.cli", "write a translation (a general sequence) with a saved seq2seq model"),
    "finetune": ("minibert.finetune.cli", "fine-tune a BERT on sentence, pair or word classification"),
    "evaluate": ("minibert.finetune.evaluate", "score a fine-tuned model on a labelled file"),
    "predict": ("minibert.finetune.predict", "write a fine-tuned model's predictions for a file"),
}
# What a user's input can raise: files missing or unreadable (OSError), wrong content or values (ValueError, which
# includes UnicodeDecodeError, json's JSONDecodeError and minibert's own errors about checkpoints and folders).
INPUT_ERRORS = (OSError, ValueError)


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python -m minibert", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (or MINIBERT_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules, parsers = {}, {}
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if not err.name or not err.name.startswith("minibert"):
                raise  # a real missing dependency, not a command that is not written yet
            continue
        parsers[name] = commands.add_parser(name, help=help_text, description=help_text)
        modules[name].add_arguments(parsers[name])
    add_debug_option(parser)
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("MINIBERT_DEBUG", "").lower() in {"1", "true", "yes"}
    module = modules[args.command]
    if hasattr(module, "check_arguments"):
        try:
            module.check_arguments(args)
        except OptionError as err:
            parsers[args.command].error(str(err))
    keep_freed_memory()  # about 9% off a CPU training step (memory.py)
    try:
        module.main(args)
    except INPUT_ERRORS as err:
        if debug:
            raise
        raise SystemExit(f"error: {err}") from None  # printed on stderr, exit code 1
    except KeyboardInterrupt:
        if debug:
            raise
        print("\nstopped (Ctrl-C).", file=sys.stderr)
        raise SystemExit(130) from None


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    """--debug is accepted after every command and sub-command too (`pretrain ... --debug`)."""
    for action in parser._actions:  # argparse has no public way to list the sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                # SUPPRESS: a sub-parser's default would overwrite what the main parser read
                sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
                add_debug_option(sub)


if __name__ == "__main__":
    main()
