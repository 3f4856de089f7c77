"""What the reward knobs do at inference: measured reward against requested target, best-of-N curves, and
the Pareto front of a two-objective tuning study. The paper's curve is drawn (grey, dashed) where the
reward and metric match one it published."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from reports import formatting, reference
from reports.figures.style import Embedded, arm_styles, axis_label, embed, new_figure, plotting
from reports.results import SweepSpec

COLUMNS = 3
PAPER_STYLE: dict[str, Any] = {"color": "#999999", "linestyle": "--", "marker": "x"}


def _panels(count: int) -> tuple[int, int]:
    return math.ceil(count / COLUMNS), min(COLUMNS, count)


@plotting
def controllability(summary: pd.DataFrame, slopes: pd.DataFrame, spec: SweepSpec) -> Embedded | None:
    """One panel per (swept reward, measured metric); a line per arm with 95% prompt-bootstrap error bars, labelled
    with its least-squares slope and that slope's interval (reports.modes.control_slopes)."""
    panels = list(dict.fromkeys(zip(summary["reward"], summary["metric"])))
    if not panels:
        return None
    styles = arm_styles([a.name for a in spec.arms])
    fitted = {(r.arm, r.reward, r.metric): f"slope {formatting.signed(r.slope)} {formatting.interval(r.low, r.high)}"
              for r in slopes.itertuples()}
    rows, columns = _panels(len(panels))
    figure = new_figure(4.2 * columns, 3.2 * rows + 0.5)
    for i, (reward, metric) in enumerate(panels):
        ax = figure.add_subplot(rows, columns, i + 1)
        data = summary[(summary["reward"] == reward) & (summary["metric"] == metric)]
        for arm, line in data.groupby("arm", sort=False):
            slope = fitted.get((arm, reward, metric))
            line = line.sort_values("target")
            error = np.abs(line[["low", "high"]].to_numpy(dtype=float).T - line["value"].to_numpy())
            style = styles[str(arm)]
            ax.errorbar(line["target"], line["value"], yerr=np.nan_to_num(error), color=style.color,
                        linestyle=style.linestyle, marker=style.marker, markersize=4, capsize=2,
                        label=f"{arm}: {slope}" if slope else str(arm))
        paper = reference.target_sweep(reward, metric)
        if paper is not None:
            ax.plot(paper["target"], paper["value"], label="paper (synthetic-caption MIRO)", **PAPER_STYLE)
        ax.set_xlabel(f"requested {reward} target (0 to 1)")
        ax.set_ylabel("measured " + axis_label(metric, spec.direction(metric)))
        ax.set_title(f"{metric} when steering {reward}")
        ax.legend()
    caption = ("Each point: mean over prompts (seeds averaged per prompt) at the arm's last step, other reward targets "
               "fixed; bars: 95% prompt-bootstrap interval. Legend: each arm's least-squares slope of measured score against "
               "target with its 95% prompt-bootstrap interval (same prompts at every target). A controllable reward rises "
               "with its target.")
    return Embedded("controllability", "Controllability by reward target", caption, embed(figure))


@plotting
def best_of_n(summary: pd.DataFrame, spec: SweepSpec) -> Embedded | None:
    """One panel per (selector, metric): value of the selected sample against N (log scale)."""
    panels = list(dict.fromkeys(zip(summary["selector"], summary["metric"])))
    if not panels:
        return None
    styles = arm_styles([a.name for a in spec.arms])
    rows, columns = _panels(len(panels))
    figure = new_figure(4.2 * columns, 3.2 * rows + 0.5)
    for i, (selector, metric) in enumerate(panels):
        ax = figure.add_subplot(rows, columns, i + 1)
        data = summary[(summary["selector"] == selector) & (summary["metric"] == metric)]
        for arm, line in data.groupby("arm", sort=False):
            style = styles[str(arm)]
            line = line.sort_values("n")
            ax.plot(line["n"], line["value"], color=style.color, linestyle=style.linestyle, marker=style.marker,
                    markersize=4, label=str(arm))
            paper = reference.best_of_n(str(arm), metric) if selector == metric else None
            if paper is not None:
                ax.plot(paper["n"], paper["value"], label=f"paper {arm}", **PAPER_STYLE)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("N (samples per prompt, best one kept)")
        ax.set_ylabel(axis_label(metric, spec.direction(metric)))
        ax.set_title(f"{metric} | best of N by {selector}")
        ax.legend()
    caption = ("Expected value of the selected sample over all N-subsets of the stored samples (harness.stats.best_of_n), "
               "mean over prompts and seeds. A curve of the selection metric itself only shows the selection; "
               "a held-out metric's curve is the evidence.")
    return Embedded("best-of-n", "Best-of-N", caption, embed(figure))


@plotting
def pareto(trials: pd.DataFrame, objectives: list[str], arm: str, direction: Callable[[str], int]) -> Embedded | None:
    """All trials in grey, the front in colour and joined, both axes labelled with their direction."""
    if trials.empty:
        return None
    first, second = objectives
    figure = new_figure(5.0, 4.0)
    ax = figure.add_subplot(1, 1, 1)
    rest, front = trials[~trials["pareto"]], trials[trials["pareto"]]
    ax.scatter(rest[first], rest[second], color="#999999", marker="o", s=18, label="trial")
    if not front.empty:
        line = front.sort_values(first)
        ax.plot(line[first], line[second], color="#0072B2", marker="D", markersize=5, label="Pareto front")
    ax.set_xlabel(axis_label(first, direction(first)))
    ax.set_ylabel(axis_label(second, direction(second)))
    ax.set_title(f"Tuning study on {arm}")
    ax.legend()
    caption = (f"Inference settings of {arm} tried by the tuning study; the front holds the trials no other trial beats "
               "on both objectives.")
    return Embedded("pareto", f"Pareto front: {first} vs {second}", caption, embed(figure))
