"""The loss curve: training loss per step (raw and smoothed), held-out loss and accuracies at each evaluation.

Lecture lectures/pretraining.md, section "Watching it learn"; notebook notebooks/03_pretraining.ipynb.
Uses matplotlib's object interface (no pyplot), so it works without a display and inside a notebook alike.
"""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure


def smooth(values: list[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average, corrected for its start (as TensorBoard draws it)."""
    out, average = [], 0.0
    for k, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight ** k))
    return out


def plot_loss_curves(runs: dict[str, dict], path: str | Path | None = None, x: str = "step") -> Figure:
    """`runs`: name -> {"history": [...], "evaluations": [...]} as the trainer records them.
    Left: loss. Right: held-out MLM and NSP accuracy. `x`: "step", or "seconds" of training time."""
    if x not in ("step", "seconds"):
        raise ValueError(f"x is {x!r}; plot against 'step' or 'seconds'.")
    figure = Figure(figsize=(11, 4), layout="constrained")
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for k, (name, run) in enumerate(runs.items()):
        color = f"C{k}"
        xs = [h[x] for h in run["history"]]
        losses = [h["loss"] for h in run["history"]]
        loss_axes.plot(xs, losses, color=color, alpha=0.25, linewidth=0.8)
        loss_axes.plot(xs, smooth(losses), color=color, label=f"{name} train (smoothed)")
        evaluations = run.get("evaluations") or []
        if evaluations:
            eval_xs = [e[x] for e in evaluations]
            loss_axes.plot(eval_xs, [e["eval_loss"] for e in evaluations], "o--", color=color,
                           label=f"{name} held-out")
            accuracy_axes.plot(eval_xs, [e["eval_mlm_accuracy"] for e in evaluations], "o-", color=color,
                               label=f"{name} MLM")
            accuracy_axes.plot(eval_xs, [e["eval_nsp_accuracy"] for e in evaluations], "s:", color=color,
                               label=f"{name} NSP")
    label = "step" if x == "step" else "training time (s)"
    loss_axes.set(xlabel=label, ylabel="MLM + NSP loss", title="loss")
    accuracy_axes.set(xlabel=label, ylabel="accuracy", ylim=(0, 1), title="held-out accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="small")
    if path is not None:
        figure.savefig(path, dpi=110)
    return figure
