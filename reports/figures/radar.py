"""Each arm's profile over the metrics, normalised across arms, with the no-reward baseline drawn in every
panel: a specialist shows as a spike on its reward and a dent elsewhere."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reports.figures.style import Embedded, arm_styles, embed, new_figure, plotting
from reports.results import SweepSpec

COLUMNS = 4


def normalised(estimates: pd.DataFrame, metrics: list[str], spec: SweepSpec) -> pd.DataFrame:
    """arm x metric in [0, 1]: 0 the worst arm, 1 the best (direction-aware); 0.5 when all arms tie."""
    table = estimates.pivot(index="arm", columns="metric", values="estimate").reindex(columns=metrics)
    low, high = table.min(), table.max()
    scaled = (table - low) / (high - low).replace(0, np.nan)
    for metric in metrics:
        if spec.direction(metric) < 0:
            scaled[metric] = 1 - scaled[metric]
    return scaled.fillna(0.5).where(table.notna())


@plotting
def radar(estimates: pd.DataFrame, spec: SweepSpec) -> Embedded | None:
    """Small multiples of polar profiles; the arm's own training rewards are starred on its axes."""
    metrics = [m for m in dict.fromkeys(estimates["metric"]) if "[" not in m and spec.direction(m) != 0]
    scaled = normalised(estimates, metrics, spec)
    arms = [a.name for a in spec.arms if a.name in scaled.index]
    if len(metrics) < 3 or len(arms) < 2:
        return None
    styles = arm_styles([a.name for a in spec.arms])
    angles = np.linspace(0, 2 * np.pi, len(metrics), endpoint=False)
    closed = np.append(angles, angles[0])
    rows = math.ceil(len(arms) / COLUMNS)
    figure = new_figure(3.2 * min(COLUMNS, len(arms)), 3.3 * rows)
    reference = spec.reference if spec.reference in scaled.index else None
    reference_lines = []
    for i, arm in enumerate(arms):
        ax = figure.add_subplot(rows, min(COLUMNS, len(arms)), i + 1, projection="polar")
        if reference is not None and arm != reference:
            ref = scaled.loc[reference].fillna(0).to_numpy()
            reference_lines += ax.plot(closed, np.append(ref, ref[0]), color="#000000", linestyle="--", linewidth=1)
        values = scaled.loc[arm].fillna(0).to_numpy()
        style = styles[arm]
        ax.plot(closed, np.append(values, values[0]), color=style.color, marker=style.marker, markersize=3, label=arm)
        ax.fill(closed, np.append(values, values[0]), color=style.color, alpha=0.25)
        trained = set(spec.arm(arm).training_rewards)
        ax.set_xticks(angles, [m + (" *" if m in trained else "") for m in metrics], fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_yticks([0.5, 1.0], ["0.5", "best"], fontsize=6)
        ax.set_title(arm, pad=14)
    if reference_lines:
        figure.legend(reference_lines[:1], [f"{reference} (no-reward baseline)"], loc="outside lower center")
    caption = ("Each metric scaled across arms at the last evaluated step: 0 = worst arm, 1 = best arm (lower-is-better "
               "metrics flipped). * marks a reward the arm was trained on (not independent evidence). "
               f"Dashed: the no-reward baseline {reference or ''}.")
    return Embedded("radar", "Trade-offs per arm (normalised metrics)", caption, embed(figure))
