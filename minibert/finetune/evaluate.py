"""`python -m minibert evaluate`: score a fine-tuned model on a labelled file, with the trainer's metrics.

Lecture 2.2 (outputs), section "Fine-tuning from the command line"; the notebooks of section 2.2.

    python -m minibert evaluate --model runs/sst2/best --data ../shared/data/glue-sst2/dev.tsv
    python -m minibert evaluate --model runs/ner/best --data ../shared/data/conll2003/eng.testb

The model folder remembers its task (finetune_task.json), so --task and the columns are needed only for a
folder fine-tuned elsewhere. The scores go to stdout as one JSON object, the same numbers the trainer printed.
"""
from __future__ import annotations

import argparse
import json
import sys
from argparse import Namespace
from dataclasses import dataclass
from pathlib import Path

from ..config import default_labels
from ..model.heads import BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification
from ..pretraining import distributed
from ..tokenizer import WordPieceTokenizer
from .cli import TASKS, add_data_arguments, make_task, read_examples, task_files
from .data import DataFormatError, UnknownLabelError
from ..options import model_folder, positive_int
from .tasks import TaskSettings


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=model_folder, metavar="DIR",
                        help="a fine-tuned model folder (e.g. OUT/best)")
    add_data_arguments(parser, training=False)
    parser.add_argument("--batch-size", type=positive_int, default=128, help="examples per forward pass")
    parser.add_argument("--device", choices=distributed.DEVICES, default="auto")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)


@dataclass
class Loaded:
    task: object
    model: object
    examples: list
    device: object


def load(args: Namespace, labelled: bool) -> Loaded:
    """The model, its task and the examples of --data, encoded as in training."""
    folder = Path(args.model)
    if not (folder / "config.json").is_file():
        sys.exit(f"error: --model {folder} holds no config.json: pass a folder that `finetune` wrote "
                 "(OUT or OUT/best).")
    saved = TaskSettings.load(folder)
    name = args.task or (saved.task if saved else None)
    if name is None:
        sys.exit(f"error: {folder} does not say which task it was fine-tuned on; pass --task ({', '.join(TASKS)}).")
    spec = TASKS[name]
    options = Namespace(
        task=name, data=args.data, max_length=args.max_length or (saved.max_length if saved else spec.max_length),
        text_column=args.text_column or (saved.text_column if saved else None),
        pair_column=args.pair_column or (saved.pair_column if saved else None),
        label_column=args.label_column or (saved.label_column if saved else None),
        label_all_pieces=saved.label_all_pieces if saved else False, stride=saved.stride if saved else 128)
    model_class = {"token": BertForTokenClassification, "qa": BertForQuestionAnswering}.get(
        spec.kind, BertForSequenceClassification)
    model = model_class.from_pretrained(folder)
    config = model.config
    regression = config.problem_type == "regression" or config.num_labels == 1
    names = config.id2label or default_labels(config.num_labels)
    labels = None if regression or spec.kind == "qa" else [names[k] for k in range(config.num_labels)]
    path, _ = task_files(options, spec, training=False)
    try:
        examples = list(read_examples(options, spec, path, labelled))[:args.limit]
        task = make_task(name, spec, options, WordPieceTokenizer.from_pretrained(folder), None, [], examples, labels,
                         batch_size=args.batch_size)
    except (DataFormatError, UnknownLabelError, ValueError) as err:
        sys.exit(f"error: {err}")
    task.eval_batch_size = args.batch_size
    device = distributed.pick_device(args.device)
    return Loaded(task, model.to(device), examples, device)


def is_labelled(example) -> bool:
    if hasattr(example, "answers"):  # a question
        return bool(example.answers)
    return (example.tags if hasattr(example, "tags") else example.label) is not None


def main(args: Namespace) -> None:
    loaded = load(args, labelled=True)
    unlabelled = [e for e in loaded.examples if not is_labelled(e)]
    if unlabelled:
        sys.exit(f"error: {len(unlabelled)} of the {len(loaded.examples)} examples in {args.data} have no label "
                 "(a test split?); `evaluate` needs labels. Use `python -m minibert predict` for unlabelled data.")
    metrics = loaded.task.score(loaded.task.held_out_predictions(loaded.model, loaded.device), loaded.examples)
    print(", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) + f" on {len(loaded.examples):,} examples",
          file=sys.stderr)
    print(json.dumps({"task": loaded.task.name, "examples": len(loaded.examples), **metrics}))
