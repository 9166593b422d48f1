"""A one-line progress bar for long work (pre-training, benchmarks, data preparation), without a dependency.

Prints to stderr at most ten times a second on a terminal, every few seconds into a log file: `label  37% |#######      | 370/1000  loss 4.21  12.3 s`.
"""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int | None, label: str = "", width: int = 24, stream=None):
        self.total, self.label, self.width = total, label, width
        self.stream = stream or sys.stderr
        self.count, self.start, self.last_print = 0, time.perf_counter(), 0.0
        self.metrics: dict[str, float | str] = {}
        self.interval = 0.1 if self.stream.isatty() else 5.0  # a log file gets a line now and then, not a flood

    def update(self, n: int = 1, **metrics) -> None:
        self.count += n
        self.metrics.update(metrics)
        now = time.perf_counter()
        if now - self.last_print >= self.interval or (self.total is not None and self.count >= self.total):
            self.last_print = now
            self._print(now)

    def _print(self, now: float) -> None:
        parts = [self.label] if self.label else []
        if self.total:
            done = min(self.count / self.total, 1.0)
            filled = int(done * self.width)
            parts.append(f"{done:4.0%} |{'#' * filled}{' ' * (self.width - filled)}| {self.count}/{self.total}")
        else:
            parts.append(str(self.count))
        parts += [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.metrics.items()]
        parts.append(f"{now - self.start:.1f} s")
        end = "\n" if not self.stream.isatty() else ""
        self.stream.write(("\r" if self.stream.isatty() else "") + "  ".join(parts) + end)
        self.stream.flush()

    def close(self) -> None:
        self._print(time.perf_counter())
        if self.stream.isatty():
            self.stream.write("\n")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
