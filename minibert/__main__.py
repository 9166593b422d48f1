"""`python -m minibert <command>`: the demo, pre-training and the benchmarks.

Each command lives in its own module with `add_arguments(parser)` and `main(args)`; this file only routes.
"""
from __future__ import annotations

import argparse
import importlib

from .memory import keep_freed_memory

COMMANDS = {
    "demo": ("minibert.demo", "tokenize, load real BERT weights and plot contextual embeddings"),
    "pretrain": ("minibert.pretraining.cli", "pre-train a BERT with MLM and NSP on raw text"),
    "bench": ("minibert.bench.cli", "benchmarks: speed (minibert vs transformers) and pre-training"),
    "generate": ("minibert.seq2seq.cli", "write a translation (a general sequence) with a saved seq2seq model"),
    "finetune": ("minibert.finetune.cli", "fine-tune a BERT on sentence, pair or word classification"),
    "evaluate": ("minibert.finetune.evaluate", "score a fine-tuned model on a labelled file"),
    "predict": ("minibert.finetune.predict", "write a fine-tuned model's predictions for a file"),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m minibert", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if not err.name or not err.name.startswith("minibert"):
                raise  # a real missing dependency, not a command that is not written yet
            continue
        modules[name].add_arguments(commands.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    keep_freed_memory()  # about 9% off a CPU training step (memory.py)
    modules[args.command].main(args)


if __name__ == "__main__":
    main()
