"""`python -m minibert bench <benchmark>`: routes to one module per benchmark.

Each benchmark module has `add_arguments(parser)`, `main(args)` and perhaps `check_arguments(args)`, like the
commands of `python -m minibert`.
Adding one is a module and a line in BENCHMARKS.
"""
from __future__ import annotations

import argparse
import importlib

BENCHMARKS = {
    "speed": ("minibert.bench.speed", "minibert vs transformers: inference, training and tokenizer speed"),
    "long": ("minibert.long.bench", "full, sliding-window and LSH attention: time and memory, 512 to 16,384 tokens"),
    "smaller": ("minibert.smaller.bench", "making BERT smaller: size and speed of int8, bfloat16 and ALBERT"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    benchmarks = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name, (module_name, help_text) in BENCHMARKS.items():
        module = importlib.import_module(module_name)
        module.add_arguments(benchmarks.add_parser(name, help=help_text, description=help_text))


def check_arguments(args: argparse.Namespace) -> None:
    """The chosen benchmark's checks that involve several options (minibert/options.py), if it has any."""
    module = importlib.import_module(BENCHMARKS[args.benchmark][0])
    if hasattr(module, "check_arguments"):
        module.check_arguments(args)


def main(args: argparse.Namespace) -> None:
    module_name, _ = BENCHMARKS[args.benchmark]
    importlib.import_module(module_name).main(args)
