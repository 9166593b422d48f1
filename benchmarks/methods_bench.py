"""The ways to fine-tune, measured; and why pre-training helps, measured. Not a test.

Lecture 2.3 (how to fine-tune) and 2.4 (why pre-training helps); README, "The ways to fine-tune". Two
experiments, each from the real MiniLM-L6-H384 weights, on the one fine-tuning loop (minibert/finetune/trainer.py):

  methods   SST-2 with every method of minibert.methods (frozen, full, adapter, weighted, lora, bitfit, prefix)
            under the same budget (the same training examples, epochs and batches): dev accuracy, the trainable
            share of the parameters, the bytes stored per task (save_trained), seconds per step and peak memory
            (each method in its own process, so its peak is its own). Add CoNLL-2003 with --tasks: there the
            weighted features are compared with the last layer alone, the encoder frozen.
  why       the same architecture from random weights against the pre-trained ones, on SST-2 and CoNLL-2003,
            with 100, 1,000, 10,000 and all training examples: held-out score and training loss; and the
            training loss along the straight line from the initial to the fine-tuned weights, for both starts
            (the lecture's loss-landscape picture, in one dimension).

    python benchmarks/methods_bench.py methods --limit 8000 --out runs/methods
    python benchmarks/methods_bench.py why --sizes 100 1000 10000 --out runs/why
    python benchmarks/methods_bench.py methods --quick          # a couple of minutes: 512 examples

Writes --out/results.json, --out/results.md (the table) and plots (labelled axes) into --out.
Goals (issue 20): adapters within 1 point of full fine-tuning with at most 5% of the parameters trained; LoRA
within 1 point with at most 1%; weighted features ahead of the last layer alone when the encoder is frozen; the
parameter-efficient methods faster per step than full fine-tuning.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see finetune_bench.py: a shared machine
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from minibert.config import BertConfig  # noqa: E402
from minibert.finetune.cli import TASKS, build_task  # noqa: E402
from minibert.finetune.tasks import ModelSource  # noqa: E402
from minibert.finetune.trainer import FinetuneConfig, FinetuneTrainer, model_inputs  # noqa: E402
from minibert.methods import METHODS, apply, count_parameters, merge, save_trained  # noqa: E402
from minibert.resources import pretrained_checkpoint_dir, shared_data_dir  # noqa: E402
from minibert.tokenizer import WordPieceTokenizer  # noqa: E402

FOLDERS = {"sst2": "glue-sst2", "conll2003": "conll2003"}
# Learning rates as the papers use them: small for the whole model, larger where few parameters train. A head on a
# frozen encoder reads MiniLM's pooled [CLS], whose values are small (std 0.06: its pooler was never trained for a
# task), so a linear probe needs 1e-2 to move in a few hundred steps (at 1e-3 it still predicted one class).
LEARNING_RATES = {"full": 5e-5, "frozen": 1e-2, "weighted": 1e-2, "adapter": 1e-3, "lora": 1e-3, "bitfit": 1e-3,
                  "prefix": 5e-3}
OPTIONS = {"adapter": {"bottleneck": 64}, "lora": {"r": 8, "alpha": 16}, "prefix": {"num_virtual_tokens": 20}}


def make_task(name: str, args, source: ModelSource, limit: int | None):
    spec = TASKS[name]
    options = argparse.Namespace(task=name, data=str(shared_data_dir() / FOLDERS[name]), eval_data=None,
                                 text_column=None, pair_column=None, label_column=None, regression=False,
                                 label_all_pieces=False, max_length=args.max_length, limit=limit,
                                 eval_limit=args.eval_limit, batch_size=args.batch_size, seed=args.seed)
    tokenizer = WordPieceTokenizer.from_pretrained(pretrained_checkpoint_dir())
    return build_task(options, spec, tokenizer, source, verbose=False)


def train(task, model, lr: float, args, out: Path) -> dict:
    config = FinetuneConfig(out_dir=out, epochs=args.epochs, lr=lr, warmup=0.1, seed=args.seed, device="cpu",
                            plot=False, quiet=True)
    trainer = FinetuneTrainer(task, config, model=model)
    began = time.perf_counter()
    result = trainer.train()
    return {"metric": result.evaluations[-1][task.main_metric], "main_metric": task.main_metric,
            "best": result.best_metric, "steps": trainer.step, "train_seconds": trainer.seconds,
            "wall_seconds": time.perf_counter() - began, "seconds_per_step": trainer.seconds / max(trainer.step, 1),
            "loss": [h["loss"] for h in result.history], "model": trainer.model}


# ----- experiment 1: the methods -----

def one_method(task_name: str, method: str, args) -> dict:
    """Train one method in this process; its peak memory is this process's."""
    torch.manual_seed(args.seed)
    task = make_task(task_name, args, ModelSource(pretrained_checkpoint_dir()), args.limit)
    model = task.make_model()
    apply(model, method, **OPTIONS.get(method, {}))
    trainable, total = count_parameters(model)
    out = Path(args.out) / task_name / method
    run = train(task, model, LEARNING_RATES[method], args, out / "run")
    stored = out / "stored"
    model = run.pop("model")
    if method == "full":
        model.save_pretrained(stored, overwrite=True)
        stored_bytes = (stored / "model.safetensors").stat().st_size
    else:
        if method == "prefix":
            merge(model)  # what a task keeps: the keys and values themselves, not the MLP that trained them
        save_trained(model, stored, overwrite=True)
        stored_bytes = (stored / "method.safetensors").stat().st_size
    weights = model.bert.scalar_mix.layer_weights().tolist() if method == "weighted" else None
    return {**run, "task": task_name, "method": method, "trainable": trainable, "total": total,
            "trainable_share": trainable / total, "stored_bytes": stored_bytes, "layer_weights": weights,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def run_methods(args) -> list[dict]:
    rows = []
    for task_name in args.tasks:
        methods = args.methods if task_name == "sst2" else ["frozen", "weighted"]
        for method in methods:
            print(f"== {task_name}: {method}", file=sys.stderr, flush=True)
            result_file = Path(args.out) / task_name / method / "result.json"
            result_file.parent.mkdir(parents=True, exist_ok=True)
            if result_file.exists() and args.reuse:
                rows.append(json.loads(result_file.read_text()))
                continue
            command = [sys.executable, __file__, "one", "--task", task_name, "--method", method,
                       "--json", str(result_file), *passed_on(args)]
            subprocess.run(command, check=True)
            rows.append(json.loads(result_file.read_text()))
            row = rows[-1]
            print(f"   {row['main_metric']} {row['metric']:.4f}, trainable {row['trainable_share']:.2%}, "
                  f"{row['seconds_per_step']:.2f} s/step, stored {row['stored_bytes'] / 2**20:.2f} MB",
                  file=sys.stderr, flush=True)
    return rows


def passed_on(args) -> list[str]:
    values = ["--limit", args.limit, "--eval-limit", args.eval_limit, "--epochs", args.epochs, "--max-length",
              args.max_length, "--batch-size", args.batch_size, "--seed", args.seed, "--out", args.out]
    return [str(v) for v in values if v is not None]


def methods_table(rows: list[dict]) -> str:
    lines = ["| task | method | held-out | trainable | share | stored per task | s / step | peak memory |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['method']} | {r['metric']:.4f} | {r['trainable']:,} | "
                     f"{r['trainable_share']:.2%} | {r['stored_bytes'] / 2**20:.2f} MB | {r['seconds_per_step']:.2f} | "
                     f"{r['peak_rss_bytes'] / 2**20:,.0f} MB |")
    return "\n".join(lines)


def plot_methods(rows: list[dict], path: Path) -> None:
    figure = Figure(figsize=(11, 4), layout="constrained")
    share_axes, weight_axes = figure.subplots(1, 2)
    sst2 = [r for r in rows if r["task"] == "sst2"]
    for k, r in enumerate(sst2):
        share_axes.scatter(100 * r["trainable_share"], 100 * r["metric"], color=f"C{k}", label=r["method"])
    share_axes.set_xscale("log")
    share_axes.set_xlabel("parameters trained (% of the model, log scale)")
    share_axes.set_ylabel("SST-2 dev accuracy (%)")
    share_axes.set_title("accuracy against what a task stores")
    share_axes.legend()
    for k, r in enumerate(r for r in rows if r["layer_weights"]):
        weight_axes.plot(range(len(r["layer_weights"])), r["layer_weights"], "o-", label=r["task"])
    weight_axes.set_xlabel("layer (0 = embeddings)")
    weight_axes.set_ylabel("learned weight (softmax)")
    weight_axes.set_title("weighted features: how much of each layer")
    weight_axes.legend()
    figure.savefig(path, dpi=120)


# ----- experiment 2: why pre-training helps -----

def random_source() -> ModelSource:
    """MiniLM's architecture with fresh random weights."""
    config = BertConfig.from_json(pretrained_checkpoint_dir() / "config.json")
    return ModelSource("random", preset_config=config)


@torch.no_grad()
def loss_along_line(task, start: dict, end: dict, model, alphas: list[float], batches: int = 8) -> list[float]:
    """Training loss at start + a (end - start), on the first `batches` training batches."""
    data = task.train_batches(0)[:batches]
    losses = []
    model.eval()
    for a in alphas:
        model.load_state_dict({k: start[k] + a * (end[k] - start[k]) if start[k].is_floating_point() else start[k]
                               for k in start})
        losses.append(sum(model(**model_inputs(b)).loss.item() for b in data) / len(data))
    return losses


def run_why(args) -> list[dict]:
    rows = []
    alphas = [i / 10 for i in range(-5, 16)]
    for task_name in args.tasks:
        for size in args.sizes:
            for start_name, source in (("pre-trained", ModelSource(pretrained_checkpoint_dir())),
                                       ("random", random_source())):
                print(f"== {task_name}: {size} examples, {start_name}", file=sys.stderr, flush=True)
                torch.manual_seed(args.seed)
                task = make_task(task_name, args, source, None if size == 0 else size)
                model = task.make_model()
                start = {k: v.clone() for k, v in model.state_dict().items()}
                lr = 5e-5 if start_name == "pre-trained" else 1e-4
                epochs_here = max(args.epochs, min(20.0, 2000 / max(len(task.train_features), 1)))  # >= ~60 steps
                run = train(task, model, lr, argparse.Namespace(**{**vars(args), "epochs": epochs_here}),
                            Path(args.out) / task_name / f"{size}-{start_name}")
                model = run.pop("model")
                end = {k: v.clone() for k, v in model.state_dict().items()}
                line = loss_along_line(task, start, end, model, alphas) if size == args.sizes[-1] else None
                rows.append({**run, "task": task_name, "size": len(task.train_features), "start": start_name,
                             "epochs": epochs_here, "alphas": alphas, "line": line})
                print(f"   {run['main_metric']} {run['metric']:.4f}", file=sys.stderr, flush=True)
    return rows


def plot_why(rows: list[dict], path: Path) -> None:
    tasks = sorted({r["task"] for r in rows})
    figure = Figure(figsize=(5 * len(tasks) + 5, 4), layout="constrained")
    axes = figure.subplots(1, len(tasks) + 1)
    for ax, task_name in zip(axes, tasks):
        for k, start in enumerate(("pre-trained", "random")):
            points = sorted((r["size"], r["metric"]) for r in rows if r["task"] == task_name and r["start"] == start)
            ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color=f"C{k}", label=start)
        ax.set_xscale("log")
        ax.set_xlabel("training examples (log scale)")
        ax.set_ylabel(rows[0]["main_metric"] if task_name == "sst2" else "entity F1")
        ax.set_title(f"{task_name}: held-out score")
        ax.legend()
    line_axes = axes[-1]
    for r in rows:
        if r["line"]:
            line_axes.plot(r["alphas"], r["line"], label=f"{r['task']}, {r['start']}")
    line_axes.axvline(0, color="gray", linewidth=0.5)
    line_axes.axvline(1, color="gray", linewidth=0.5)
    line_axes.set_xlabel("position on the line (0 = initial weights, 1 = fine-tuned)")
    line_axes.set_ylabel("training loss")
    line_axes.set_title("the loss along the way")
    line_axes.legend()
    figure.savefig(path, dpi=120)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=["methods", "why", "one"])
    parser.add_argument("--tasks", nargs="+", default=["sst2"], choices=list(FOLDERS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[100, 1000, 10000, 0], help="0 = all")
    parser.add_argument("--limit", type=int, default=None, help="training examples (methods; default all)")
    parser.add_argument("--eval-limit", type=int, default=None)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="512 training examples, 256 held out")
    parser.add_argument("--reuse", action="store_true", help="keep the results of methods already run in --out")
    parser.add_argument("--out", default="runs/methods-bench")
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.limit, args.eval_limit, args.sizes = 512, 256, [100, 512]
    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.experiment == "one":
        Path(args.json).write_text(json.dumps(one_method(args.task, args.method, args), indent=1))
        return
    rows = run_methods(args) if args.experiment == "methods" else run_why(args)
    (out / f"{args.experiment}.json").write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=1))
    if args.experiment == "methods":
        table = methods_table(rows)
        plot_methods(rows, out / "methods.png")
    else:
        table = "\n".join(["| task | examples | start | held-out | steps |", "|---|---:|---|---:|---:|"] +
                          [f"| {r['task']} | {r['size']:,} | {r['start']} | {r['metric']:.4f} | {r['steps']} |"
                           for r in rows])
        plot_why(rows, out / "why.png")
    (out / f"{args.experiment}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
