"""The long-sequence benchmark's arithmetic (minibert/long/bench.py): exponents, crossover, extrapolation and
the peak-memory count.

Lecture 1.3; run with `pytest -m long_sequences`.
"""
import argparse
import json

import pytest
import torch

from minibert.long import bench
from minibert.long.bench import Row, crossover, extrapolate, fitted_exponent, peak_bytes

pytestmark = pytest.mark.long_sequences


def rows_of(method, mode, lengths, f, key="peak_bytes"):
    return [Row(method, mode, n, f(n) if key == "seconds" else 1.0, f(n) if key == "peak_bytes" else 1)
            for n in lengths]


def test_fitted_exponent_of_power_laws():
    lengths = [512, 1024, 2048, 4096]
    quadratic = rows_of("full", "forward", lengths, lambda n: 3 * n * n)
    linear_plus_constant = rows_of("window", "forward", lengths, lambda n: 1000 * n + 10**6)
    assert fitted_exponent(quadratic, "full", "forward", "peak_bytes") == pytest.approx(2.0)
    # over the three longest lengths only: the constant weighs less there than over all four
    assert (fitted_exponent(linear_plus_constant, "window", "forward", "peak_bytes")
            > fitted_exponent(linear_plus_constant, "window", "forward", "peak_bytes", longest=4))


def test_extrapolation_follows_the_last_two_runs_and_never_falls_below_linear():
    rows = rows_of("full", "forward", [1024, 2048], lambda n: n * n)
    assert extrapolate(rows, 8192, "peak_bytes") == pytest.approx(8192**2)
    flat = rows_of("x", "forward", [1024, 2048], lambda n: 5)
    assert extrapolate(flat, 4096, "peak_bytes") == pytest.approx(10)  # exponent clamped to 1
    assert extrapolate(rows[:1], 4096, "peak_bytes") is None


def test_crossover_is_where_the_window_stays_faster():
    rows = ([Row("full (sdpa)", "forward", n, s, 1) for n, s in ((512, 1.0), (1024, 2.0), (2048, 8.0), (4096, 30.0))]
            + [Row("sliding window", "forward", n, s, 1)
               for n, s in ((512, 0.5), (1024, 3.0), (2048, 6.0), (4096, 12.0))])
    assert crossover(rows, "forward") == 2048  # faster at 512 too, but not from there on
    assert crossover(rows, "forward+backward") is None


def test_peak_bytes_counts_what_is_held_at_once_above_the_start():
    held_before = torch.zeros(10_000_000)  # 40 MB alive before the run: not counted

    def run():
        a = torch.ones(1_000_000)   # 4 MB
        b = torch.ones(2_000_000)   # 8 MB, both alive: 12 MB
        del a, b
        c = torch.ones(500_000)     # 2 MB after they are gone
        del c

    peak_bytes(lambda: torch.ones(3_000_000))  # a session whose result is freed after it ends
    assert peak_bytes(run) == pytest.approx(12_000_000, rel=0.01)
    assert held_before.numel()


def test_command_writes_rows_and_the_eager_rows_hold_the_score_matrix(tmp_path):
    args = argparse.Namespace(quick=True, json=tmp_path / "long.json", plot=tmp_path / "long.png", lengths=[128, 256],
                              heads=2, window=32, repeats=1, memory_limit_gb=None, methods=None, threads=None)
    bench.main(args)
    result = json.loads(args.json.read_text())
    rows = {(r["method"], r["mode"], r["length"]): r for r in result["rows"]}
    assert len(rows) == 4 * 2 * 2 and args.plot.stat().st_size > 0
    for n in (128, 256):
        scores = 2 * n * n * 4  # heads x n x n float32: the textbook kernel stores at least the probabilities
        assert rows[("full (eager)", "forward", n)]["peak_bytes"] >= scores
        assert rows[("full (sdpa)", "forward", n)]["peak_bytes"] < scores  # the fused kernel never does
    assert set(result["rows"][0]) >= {"method", "length", "seconds", "peak_bytes"}
