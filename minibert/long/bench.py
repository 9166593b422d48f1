"""`python -m minibert bench long`: time and peak memory of full, sliding-window and hashing attention, 512 to
16,384 tokens, forward and forward plus backward.

Lecture 1.3 (the cost curves the argument for long-sequence models rests on); notebook
notebooks/04_long_sequences.ipynb. One attention call of a BERT-base-sized layer (12 heads of 64, batch 1) on
random queries, keys and values, for each method:
- full (sdpa): PyTorch's fused `F.scaled_dot_product_attention`, the strongest baseline. On a CPU it is a
  FlashAttention-style kernel: it never stores the (n x n) scores, so its memory is linear too; its time is not;
- full (eager): the textbook formula (minibert's eager kernel), which stores the (n x n) probabilities;
- sliding window: long/sliding_window.py, window 512 (Longformer's);
- lsh: long/lsh.py, 2 hash rounds, chunks of 64.
Seconds: the fastest of `repeats` runs (the machine is shared; the fastest is the least disturbed).
Peak bytes: the high-water mark of the bytes held by tensors allocated during one run, above what was allocated
before it (the inputs), from the allocation events of torch.profiler with memory profiling: every CPU tensor
allocation and free, with the running total (`peak_bytes` says how). A run whose predicted
memory (extrapolated from the method's two longest runs so far) exceeds the memory limit is not run: its row
gives that prediction, marked estimated.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..bench.speed import _stderr_silenced
from ..model.attention import eager_attention
from .lsh import lsh_attention
from .sliding_window import sliding_window_attention

MODES = ("forward", "forward+backward")
GOAL_MEMORY_EXPONENT = 1.1  # sliding window: memory ~ n^e with e at most this


@dataclass
class Settings:
    lengths: tuple[int, ...] = (512, 1024, 2048, 4096, 8192, 16384)
    heads: int = 12
    head_dim: int = 64
    window: int = 512
    lsh_rounds: int = 2
    lsh_chunk: int = 64
    repeats: int = 2
    memory_limit_gb: float = 4.0   # runs predicted to need more are estimated, not run
    max_seconds: float = 600.0     # runs predicted to take longer are estimated, not run
    methods: tuple[str, ...] = ("full (sdpa)", "full (eager)", "sliding window", "lsh")
    seed: int = 0

    @classmethod
    def quick(cls, **changes) -> "Settings":
        """Under a minute: three lengths, one head."""
        return cls(**{"lengths": (512, 1024, 2048), "heads": 1, "repeats": 1, "max_seconds": 10.0, **changes})


def attention_functions(settings: Settings) -> dict[str, Callable]:
    """method -> f(q, k, v) -> (b h n d)."""
    rotations = torch.Generator().manual_seed(settings.seed)
    return {
        "full (sdpa)": lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
        "full (eager)": lambda q, k, v: eager_attention(q, k, v)[0],
        "sliding window": lambda q, k, v: sliding_window_attention(q, k, v, window=settings.window)[0],
        # Reformer shares queries and keys: the query tensor is the key tensor
        "lsh": lambda q, k, v: lsh_attention(q, q, v, rounds=settings.lsh_rounds, chunk_size=settings.lsh_chunk,
                                             generator=rotations)[0],
    }


def one_run(attend: Callable, q, k, v, mode: str) -> Callable[[], None]:
    def run() -> None:
        for t in (q, k, v):
            t.grad = None  # the previous run's gradients go before this run starts
        if mode == "forward":
            with torch.no_grad():
                attend(q, k, v)
            return
        attend(q, k, v).sum().backward()
    return run


def peak_bytes(run: Callable[[], None]) -> int:
    """The high-water mark of the bytes held by tensors allocated during `run`, above what was held when it began.

    torch.profiler with profile_memory records every CPU tensor allocation and free with the allocator's running
    total. That total is not reset between profiling sessions (a tensor freed after one session ends stays
    counted), so the level at the start is read off the first event (its total minus its own size) rather than
    assumed to be zero, as minibert/bench/speed.py's `peak_memory` does.
    """
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with _stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    events, allocations = list(prof.profiler.kineto_results.experimental_event_tree()), []
    while events:
        event = events.pop()
        events.extend(event.children)
        if event.tag == _EventType.Allocation:
            allocations.append(event)
    if not allocations:
        return 0
    allocations.sort(key=lambda e: e.start_time_ns)
    start = allocations[0].extra_fields.total_allocated - allocations[0].extra_fields.alloc_size
    return max(0, max(e.extra_fields.total_allocated for e in allocations) - start)


@dataclass
class Row:
    method: str
    mode: str
    length: int
    seconds: float | None      # None when not run
    peak_bytes: int | None
    estimated: bool = False    # True: not run; peak_bytes (and seconds) extrapolated
    note: str = ""


def extrapolate(rows: list[Row], length: int, key: str) -> float | None:
    """The value at `length` on the power law through the two longest measured rows (exponent at least 1)."""
    measured = [r for r in rows if not r.estimated and getattr(r, key)]
    if len(measured) < 2:
        return None
    (n0, y0), (n1, y1) = [(r.length, getattr(r, key)) for r in measured[-2:]]
    exponent = max(1.0, math.log(y1 / y0) / math.log(n1 / n0))
    return y1 * (length / n1) ** exponent


def measure(settings: Settings, log: Callable[[str], None] = print) -> list[Row]:
    functions = attention_functions(settings)
    limit = settings.memory_limit_gb * 2**30
    rows = []
    for method in settings.methods:
        for mode in MODES:
            done: list[Row] = []
            for n in settings.lengths:
                need, seconds = extrapolate(done, n, "peak_bytes"), extrapolate(done, n, "seconds")
                if (need and need > limit) or (seconds and seconds > settings.max_seconds):
                    why = (f"needs ~{need / 2**30:.1f} GiB > limit {settings.memory_limit_gb:g}"
                           if need and need > limit else f"would take ~{seconds:.0f} s > {settings.max_seconds:g}")
                    done.append(Row(method, mode, n, seconds, int(need) if need else None, estimated=True, note=why))
                    log(f"{method:>15} {mode:>16} {n:>6}: skipped, {why}")
                    continue
                g = torch.Generator().manual_seed(settings.seed)
                q, k, v = (torch.randn(1, settings.heads, n, settings.head_dim, generator=g,
                                       requires_grad=mode != "forward") for _ in range(3))
                run = one_run(functions[method], q, k, v, mode)
                if n <= 2048:
                    run()  # warm-up: first-call costs (allocator, thread pool) only matter at small sizes
                times: list[float] = []
                while len(times) < settings.repeats or (sum(times) < 1.0 and len(times) < 10):  # short runs: more
                    start = time.perf_counter()
                    run()
                    times.append(time.perf_counter() - start)
                row = Row(method, mode, n, min(times), peak_bytes(run))
                done.append(row)
                log(f"{method:>15} {mode:>16} {n:>6}: {row.seconds:8.3f} s {row.peak_bytes / 2**20:9.1f} MiB")
            rows += done
    return rows


def fitted_exponent(rows: list[Row], method: str, mode: str, key: str, longest: int = 3) -> float | None:
    """The slope of log(key) against log(length), least squares over the `longest` measured lengths of one method
    and mode: the growth where it matters, not the fixed costs that dominate short sequences."""
    points = [(math.log(r.length), math.log(getattr(r, key))) for r in rows
              if r.method == method and r.mode == mode and not r.estimated and getattr(r, key)][-longest:]
    if len(points) < 2:
        return None
    x, y = torch.tensor(points, dtype=torch.float64).unbind(1)
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def crossover(rows: list[Row], mode: str, fast: str = "sliding window", baseline: str = "full (sdpa)") -> int | None:
    """The shortest measured length from which `fast` is faster than `baseline` at every longer measured length."""
    timed = {(r.method, r.length): r.seconds for r in rows if r.mode == mode and not r.estimated}
    lengths = sorted(n for (method, n) in timed if method == fast and (baseline, n) in timed)
    wins = [timed[(fast, n)] < timed[(baseline, n)] for n in lengths]
    for i, n in enumerate(lengths):
        if all(wins[i:]):
            return n
    return None


def summary(rows: list[Row], settings: Settings) -> dict:
    methods = settings.methods
    return {
        "memory_exponent": {f"{m} {mode}": fitted_exponent(rows, m, mode, "peak_bytes")
                            for m in methods for mode in MODES},
        "time_exponent": {f"{m} {mode}": fitted_exponent(rows, m, mode, "seconds") for m in methods for mode in MODES},
        "sliding_window_beats_sdpa_from": {mode: crossover(rows, mode) for mode in MODES},
        "goal_memory_exponent": GOAL_MEMORY_EXPONENT,
    }


def format_table(rows: list[Row], summary_: dict, settings: Settings) -> str:
    lines = [f"attention of one layer: batch 1, {settings.heads} heads x {settings.head_dim}, window "
             f"{settings.window}, LSH {settings.lsh_rounds} rounds / chunks of {settings.lsh_chunk}",
             f"{'method':<16}{'mode':<18}" + "".join(f"{n:>16}" for n in settings.lengths)]
    for method in settings.methods:
        for mode in MODES:
            cells = []
            for n in settings.lengths:
                row = next((r for r in rows if (r.method, r.mode, r.length) == (method, mode, n)), None)
                if row is None:
                    cells.append(f"{'':>16}")
                elif row.estimated:
                    cells.append(f"{'(' + f'{row.peak_bytes / 2**20:,.0f} MiB' + ')':>16}")
                else:
                    cells.append(f"{f'{row.seconds:.3f}s {row.peak_bytes / 2**20:,.0f}M':>16}")
            lines.append(f"{method:<16}{mode:<18}" + "".join(cells))
    lines.append("seconds (fastest run) and peak MiB of tensors allocated in a run; (MiB) = not run, memory "
                 "extrapolated from the two longest runs; exponents fitted over the three longest measured lengths")
    for mode in MODES:
        e = summary_["memory_exponent"].get(f"sliding window {mode}")
        t = summary_["time_exponent"].get(f"sliding window {mode}")
        if e is not None:
            verdict = "meets" if e <= GOAL_MEMORY_EXPONENT else "misses"
            lines.append(f"sliding window, {mode}: memory ~ n^{e:.2f} ({verdict} the goal <= "
                         f"{GOAL_MEMORY_EXPONENT}), time ~ n^{t:.2f}; faster than full (sdpa) from "
                         f"{summary_['sliding_window_beats_sdpa_from'][mode] or 'no measured length'}")
    return "\n".join(lines)


def plot(rows: list[Row], path: Path, settings: Settings) -> None:
    from matplotlib.figure import Figure  # not pyplot: no display backend needed, and none changed for a notebook

    fig = Figure(figsize=(11, 4.2))
    ax_time, ax_memory = fig.subplots(1, 2)
    colours = dict(zip(settings.methods, ("tab:blue", "tab:red", "tab:green", "tab:purple")))
    for method in settings.methods:
        for mode, style in zip(MODES, ("-", "--")):
            own = [r for r in rows if r.method == method and r.mode == mode]
            run = [r for r in own if not r.estimated]
            label = f"{method}, {mode}"
            ax_time.plot([r.length for r in run], [r.seconds for r in run], style, marker="o",
                         color=colours[method], label=label)
            ax_memory.plot([r.length for r in run], [r.peak_bytes / 2**20 for r in run], style, marker="o",
                           color=colours[method], label=label)
            guessed = [r for r in own if r.estimated]
            if guessed:
                line = run[-1:] + guessed  # from the last measured point on
                ax_memory.plot([r.length for r in line], [r.peak_bytes / 2**20 for r in line], ":", marker="o",
                               markerfacecolor="none", color=colours[method])
    for ax, what in ((ax_time, "seconds (one attention call)"), (ax_memory, "peak memory of the call (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length (tokens)")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
    ax_memory.axhline(settings.memory_limit_gb * 1024, color="grey", lw=0.8)
    ax_memory.text(settings.lengths[0], settings.memory_limit_gb * 1024 * 1.15, "memory limit of the run", fontsize=8)
    ax_time.legend(fontsize=7)
    ax_memory.set_title("hollow, dotted: not run, extrapolated", fontsize=9)
    fig.suptitle(f"Attention cost: {settings.heads} head(s) of {settings.head_dim}, batch 1, CPU")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="three lengths, one head: under a minute")
    parser.add_argument("--json", type=Path, default=None, help="write the rows (method, mode, length, seconds, "
                        "peak_bytes, estimated) and the fitted exponents to this file")
    parser.add_argument("--plot", type=Path, default=None,
                        help="the log-log plot (default: bench-results/long-<date>-<time>.png)")
    parser.add_argument("--lengths", type=int, nargs="+", default=None, help="default: 512 1024 ... 16384")
    parser.add_argument("--heads", type=int, default=None, help="attention heads (default: 12, BERT-base)")
    parser.add_argument("--window", type=int, default=None, help="sliding window, both sides (default: 512)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per cell; the fastest counts")
    parser.add_argument("--memory-limit-gb", type=float, default=None,
                        help="runs predicted to need more are not run (default: 4)")
    parser.add_argument("--methods", nargs="+", default=None, choices=Settings.methods, metavar="METHOD",
                        help=f"a subset of: {', '.join(repr(m) for m in Settings.methods)}")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: PyTorch's). On a machine shared with other jobs, 1: threads "
                             "that wait for a descheduled sibling made small operations 30x slower here")


def main(args: argparse.Namespace) -> None:
    changes = {"lengths": tuple(args.lengths) if args.lengths else None, "heads": args.heads,
               "window": args.window, "repeats": args.repeats, "memory_limit_gb": args.memory_limit_gb,
               "methods": tuple(args.methods) if args.methods else None}
    changes = {k: v for k, v in changes.items() if v is not None}
    settings = Settings.quick(**changes) if args.quick else Settings(**changes)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(settings.seed)
    rows = measure(settings)
    summary_ = summary(rows, settings)
    print(format_table(rows, summary_, settings))
    stamp = f"{datetime.datetime.now():%Y%m%d-%H%M%S}"
    plot_path = args.plot or Path("bench-results") / f"long-{stamp}.png"
    plot(rows, plot_path, settings)
    print(f"wrote {plot_path}")
    if args.json:
        meta = {"settings": asdict(settings), "threads": torch.get_num_threads(), "machine": platform.processor()
                or platform.machine(), "torch": torch.__version__, "date": stamp}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "summary": summary_, "rows": [asdict(r) for r in rows]},
                                        indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
