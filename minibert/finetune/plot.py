"""The fine-tuning curves: training loss per step, and the task's metrics at each evaluation.

Lecture 2.2 (outputs); the notebooks of section 2.2. Uses matplotlib's object interface (no pyplot), as
pretraining/plot.py does, so it works without a display and inside a notebook alike.
"""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from ..pretraining.plot import smooth


def plot_finetuning(history: list[dict], evaluations: list[dict], main_metric: str, path: str | Path | None = None,
                    title: str = "") -> Figure:
    """Left: the training loss (raw and smoothed) against the step. Right: every metric of the evaluations,
    the main one drawn thick with its best point marked."""
    figure = Figure(figsize=(11, 4), layout="constrained")
    loss_axes, metric_axes = figure.subplots(1, 2)
    steps, losses = [h["step"] for h in history], [h["loss"] for h in history]
    if steps:
        loss_axes.plot(steps, losses, color="C0", alpha=0.25, linewidth=0.8, label="per step")
        loss_axes.plot(steps, smooth(losses), color="C0", label="smoothed")
    loss_axes.set(xlabel="step", ylabel="training loss", title=f"{title} training loss".strip())
    names = [k for k in (evaluations[0] if evaluations else {}) if k not in ("step", "epoch", "seconds")]
    eval_steps = [e["step"] for e in evaluations]
    for k, name in enumerate(sorted(names, key=lambda n: n != main_metric)):
        values = [e[name] for e in evaluations]
        main = name == main_metric
        metric_axes.plot(eval_steps, values, "o-" if main else ".--", color=f"C{k}", linewidth=2 if main else 1,
                         label=name)
        if main and values:
            best = max(range(len(values)), key=values.__getitem__)
            metric_axes.annotate(f"best {values[best]:.3f}", (eval_steps[best], values[best]),
                                 textcoords="offset points", xytext=(0, 8), ha="center", fontsize="small")
    metric_axes.set(xlabel="step", ylabel="held-out score", title=f"held-out {main_metric} (higher is better)")
    for axes in (loss_axes, metric_axes):
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="small")
    if path is not None:
        figure.savefig(path, dpi=110)
    return figure
