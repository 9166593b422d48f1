"""`python -m minibert predict`: a fine-tuned model's predictions for every example of a file.

Lecture 2.2 (outputs), section "Fine-tuning from the command line"; the notebooks of section 2.2.

    python -m minibert predict --model runs/sst2/best --data ../shared/data/glue-sst2/test.tsv --out sst2.tsv
    python -m minibert predict --model runs/ner/best --data sentences.conll --out tagged.conll

Sentence tasks: a TSV (or CSV, by --out's suffix) with the columns index, prediction, text (and pair).
Word tasks: CoNLL lines, `word<TAB>predicted tag`, a blank line after each sentence. Question answering: the
homework's submission CSV (`ID,Answer`) for hw7, else SQuAD's predictions JSON ({question id: answer}).
Labels in --data are not needed and not read.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from ..checkpoint import atomic_path
from .evaluate import add_model_arguments, load
from .qa import write_hw7_submission


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--out", required=True, metavar="FILE", help="where to write the predictions")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def main(args: argparse.Namespace) -> None:
    if Path(args.out).exists() and not args.overwrite:  # before any work: predictions people saved stay
        raise FileExistsError(f"--out {args.out} already exists and is not overwritten; choose another name, or add "
                              "--overwrite to replace it.")
    loaded = load(args, labelled=False)
    predictions = loaded.task.held_out_predictions(loaded.model, loaded.device)
    out = Path(args.out)
    if loaded.task.settings.kind == "qa":
        answers = [(example.id, predictions[example.id]) for example in loaded.examples]
        if loaded.task.name == "hw7":
            write_hw7_submission(out, answers, overwrite=True)
        else:
            with atomic_path(out) as tmp:
                tmp.write_text(json.dumps(dict(answers), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"{len(answers):,} answers written to {out}", file=sys.stderr)
        return
    with atomic_path(out) as tmp, tmp.open("w", encoding="utf-8", newline="") as file:
        if loaded.task.settings.kind == "token":
            for sentence, tags in zip(loaded.examples, predictions):
                file.writelines(f"{word}\t{tag}\n" for word, tag in zip(sentence.words, tags))
                file.write("\n")
        else:
            writer = csv.writer(file, delimiter="," if out.suffix.lower() == ".csv" else "\t",
                                quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
            has_pair = any(e.pair is not None for e in loaded.examples)
            writer.writerow(["index", "prediction", "text"] + (["pair"] if has_pair else []))
            for k, (example, prediction) in enumerate(zip(loaded.examples, predictions)):
                writer.writerow([k, prediction, example.text] + ([example.pair] if has_pair else []))
    print(f"{len(predictions):,} predictions written to {out}", file=sys.stderr)
