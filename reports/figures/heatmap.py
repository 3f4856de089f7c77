"""GenEval per task and arm as a heat map (cividis: readable in greyscale and with colour-vision deficiency)."""
from __future__ import annotations

import pandas as pd

from reports.figures.style import Embedded, embed, new_figure, plotting
from reports.results import SweepSpec


def task_table(estimates: pd.DataFrame, spec: SweepSpec, metric: str = "geneval") -> pd.DataFrame:
    """arm x (tasks..., overall) of `metric`, arms in sweep order, tasks in the estimates' order."""
    rows = estimates[estimates["metric"].str.startswith(f"{metric}[")]
    if rows.empty:
        return pd.DataFrame(index=pd.Index([], name="arm"))
    table = rows.assign(task=rows["metric"].str[len(metric) + 1:-1]).pivot(index="arm", columns="task", values="estimate")
    table = table[list(dict.fromkeys(rows["metric"].str[len(metric) + 1:-1]))]
    overall = estimates[estimates["metric"] == metric].set_index("arm")["estimate"]
    table["overall"] = overall
    return table.reindex([a.name for a in spec.arms if a.name in table.index])


@plotting
def geneval_heatmap(table: pd.DataFrame) -> Embedded | None:
    """Cells annotated with their value; the overall column is the unweighted mean of the tasks."""
    if table.empty:
        return None
    figure = new_figure(1.1 * table.shape[1] + 2.4, 0.42 * table.shape[0] + 1.4)
    ax = figure.add_subplot(1, 1, 1)
    image = ax.imshow(table.to_numpy(dtype=float), cmap="cividis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=30, ha="right")
    ax.set_yticks(range(table.shape[0]), table.index)
    ax.set_xlabel("GenEval task")
    ax.set_ylabel("arm")
    ax.grid(False)
    for (i, j), value in pd.DataFrame(table.to_numpy()).stack().items():
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="black" if value > 0.55 else "white")
    figure.colorbar(image, ax=ax, label="fraction of images correct")
    caption = ("GenEval accuracy per task at each arm's last evaluated step (images and seeds averaged per prompt); "
               "overall = unweighted mean over tasks, as GenEval defines it.")
    return Embedded("geneval-heatmap", "GenEval per task", caption, embed(figure))
