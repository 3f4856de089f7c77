"""Every metric against training step for every arm, the no-reward baseline's final value drawn as the
target line and the fastest arms' speed-ups (with intervals) written in each panel."""
from __future__ import annotations

import math

import pandas as pd

from reports import formatting
from reports.figures.style import Embedded, arm_styles, axis_label, embed, new_figure, plotting
from reports.results import SweepSpec

COLUMNS = 3
ANNOTATED = 3  # speed-ups written per panel; the table lists them all


@plotting
def training_curves(curves: pd.DataFrame, speedups: pd.DataFrame, spec: SweepSpec,
                    published: dict[str, float]) -> Embedded | None:
    """One panel per metric; `published` adds the paper's speed-up where the metric matches."""
    metrics = list(dict.fromkeys(curves["metric"]))
    if not metrics or curves["step"].nunique() < 2:
        return None
    styles = arm_styles([a.name for a in spec.arms])
    rows = math.ceil(len(metrics) / COLUMNS)
    figure = new_figure(4.2 * min(COLUMNS, len(metrics)), 3.0 * rows + 0.6)
    for i, metric in enumerate(metrics):
        ax = figure.add_subplot(rows, min(COLUMNS, len(metrics)), i + 1)
        data = curves[curves["metric"] == metric]
        for arm in spec.arms:
            line = data[data["arm"] == arm.name].sort_values("step")
            if not line.empty:
                style = styles[arm.name]
                ax.plot(line["step"], line["value"], color=style.color, linestyle=style.linestyle, marker=style.marker,
                        markersize=4, label=arm.name)
        reference = data[data["arm"] == spec.reference].sort_values("step")
        if not reference.empty:
            ax.axhline(reference["value"].iloc[-1], color="#000000", linestyle=":", linewidth=1)
        found = speedups[(speedups["metric"] == metric) & speedups["speedup"].notna()].sort_values("speedup", ascending=False)
        notes = [f"speed-up vs {spec.reference}"] + [
            f"{r['arm']} {formatting.speedup(r['speedup'], r['low'], r['high'], r['at_first_step'], r['baseline_flat'])}"
            + (f" (to step {r['target_step']})" if r["target_step"] < curves["step"].max() else "")
            for _, r in found.head(ANNOTATED).iterrows()]
        if metric in published:
            notes.append(f"paper (MIRO vs baseline): {published[metric]:.1f}×")
        if len(notes) > 1:
            ax.text(0.02, 0.98, "\n".join(notes), transform=ax.transAxes,
                    va="top", fontsize=7, bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "#999999"})
        ax.set_xlabel("training step")
        ax.set_ylabel(axis_label(metric, spec.direction(metric)))
        ax.set_title(metric)
    handles, labels = figure.axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6))
    caption = "Mean over prompts and seeds at each evaluated checkpoint. " + (
        f"Dotted: {spec.reference}'s final value, the target of the speed-up = its last step / the first step at which an "
        "arm reaches that value (linear interpolation; ≥ when reached at the first checkpoint; 95% prompt-bootstrap interval)."
        if spec.reference else "The sweep has no no-reward baseline, so no speed-up is computed.")
    return Embedded("curves", "Training curves and convergence speed-up", caption, embed(figure))
