"""The main table (every arm x every metric) as cells for the template, and every table's CSV/JSON export.

Columns are grouped so that held-out evidence (GenEval, other held-out scorers, diversity) stands apart from
the reward metrics; within the reward group a cell is shaded when its arm was trained on that reward.
Each cell carries its interval, a best-in-column mark, and significance marks against the arm's baseline
(filled triangles) and against the no-reward baseline (open triangles), Holm-corrected within each family (reports.comparisons.family_of).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.stats import seed_t_interval
from reports import formatting
from reports.results import BINARY_METRICS, UNDIRECTED_METRICS, SweepSpec, clip_to_range

GENEVAL = "GenEval (held out)"
HELD_OUT = "Other held-out metrics"
DIVERSITY = "Diversity (held out, set-level, not tested)"
REWARDS = "Reward metrics (shaded: this arm was trained on it)"
GENEVAL_TASKS = "GenEval per task (held out)"
MARKS = {("own", 1): "▲", ("own", -1): "▼", ("reference", 1): "△", ("reference", -1): "▽",
         ("own", 0): "◆", ("reference", 0): "◇"}


@dataclass(frozen=True)
class Column:
    label: str
    group: str
    base_metric: str


@dataclass
class Cell:
    text: str = "–"
    interval: str = ""
    sort: float | None = None
    classes: list[str] = field(default_factory=list)
    marks: str = ""
    title: str = ""


@dataclass
class Row:
    label: str
    note: str
    cells: list[Cell]


@dataclass
class MainTable:
    groups: list[tuple[str, int]]
    columns: list[Column]
    rows: list[Row]
    reference_rows: list[Row]


def columns(labels: list[str], base: dict[str, str], spec: SweepSpec, diversity: list[str]) -> list[Column]:
    """Metric columns in reading order: GenEval, other held-out, diversity, reward metrics, then GenEval's tasks
    (last, so that a laptop-wide screen shows every kind of metric before any scrolling)."""
    rewards = {r for a in spec.arms for r in a.training_rewards}

    def group(label: str) -> str:
        if base[label] in BINARY_METRICS or base[label] in UNDIRECTED_METRICS:
            return GENEVAL if label == base[label] else GENEVAL_TASKS
        return REWARDS if base[label] in rewards else HELD_OUT

    order = [GENEVAL, HELD_OUT, DIVERSITY, REWARDS, GENEVAL_TASKS]
    out = [Column(label, group(label), base[label]) for label in labels]
    out += [Column(m, DIVERSITY, m) for m in diversity]
    return sorted(out, key=lambda c: order.index(c.group))


def diversity_summary(diversity: pd.DataFrame | None) -> pd.DataFrame:
    """arm x metric at the arm's last step: the mean over seeds, with the stored interval for one seed and a
    between-seed t-interval for several."""
    out_columns = ["arm", "metric", "step", "n_seeds", "estimate", "low", "high"]
    if diversity is None or diversity.empty:
        return pd.DataFrame(columns=out_columns)
    last = diversity[diversity["step"] == diversity.groupby("arm")["step"].transform("max")]
    rows = []
    for (arm, metric, step), group in last.groupby(["arm", "metric", "step"], sort=False):
        values = group["value"].to_numpy(dtype=float)
        if len(values) == 1:
            low, high = float(group["low"].iloc[0]), float(group["high"].iloc[0])
        else:
            interval = seed_t_interval(values)
            low, high = interval.low, interval.high
        clipped = clip_to_range(str(metric), low, high)
        rows.append({"arm": arm, "metric": metric, "step": step, "n_seeds": len(values), "estimate": values.mean(),
                     "low": clipped[0], "high": clipped[1]})
    return pd.DataFrame(rows, columns=out_columns)


def best_arms(values: pd.Series, direction: int) -> set[str]:
    """Arms with the best value of a column (ties share it); none for a metric without a better direction."""
    values = values.dropna()
    if direction == 0 or values.empty:
        return set()
    best = values.max() if direction > 0 else values.min()
    return set(values.index[np.isclose(values, best)])


def significance(comparisons: pd.DataFrame, spec: SweepSpec, arm: str, label: str, direction: int) -> tuple[str, str]:
    """(marks, tooltip) for one cell from the arm's comparisons on that metric."""
    marks, notes = "", []
    rows = comparisons[(comparisons["arm"] == arm) & (comparisons["metric"] == label)]
    for _, row in rows.iterrows():
        kind = "own" if row["against"] == spec.arm(arm).baseline else "reference"
        verdict = "significant" if row["significant"] else "not significant"
        seeds = formatting.interval(row["seed_low"], row["seed_high"])
        notes.append(f"vs {row['against']}: {formatting.signed(row['difference'])} {formatting.interval(row['low'], row['high'])}"
                     f"{' (across seeds ' + seeds + ')' if seeds else ''}, {row['test']}, Holm {formatting.p_value(row['p_holm'])} ({verdict})")
        if row["significant"]:
            sign = 1 if row["difference"] > 0 else -1
            marks += MARKS[(kind, sign * direction)]
    return marks, "; ".join(notes)


def main_table(estimates: pd.DataFrame, comparisons: pd.DataFrame, diversity: pd.DataFrame, spec: SweepSpec,
               published: pd.DataFrame) -> MainTable:
    base = dict(zip(estimates["metric"], estimates["base_metric"]))
    cols = columns(list(dict.fromkeys(estimates["metric"])), base, spec, list(dict.fromkeys(diversity["metric"])))
    values = {(r.arm, r.metric): r for r in estimates.itertuples()} | {(r.arm, r.metric): r for r in diversity.itertuples()}
    last = max(spec.eval_steps) if spec.eval_steps else None
    best = {}
    for c in cols:
        source = diversity if c.group == DIVERSITY else estimates
        column = source[source["metric"] == c.label].set_index("arm")["estimate"]
        best[c.label] = best_arms(column, spec.direction(c.base_metric))
    rows = []
    for arm in spec.arms:
        cells, steps = [], set()
        for c in cols:
            found = values.get((arm.name, c.label))
            if found is None:
                cells.append(Cell(title="no result yet"))
                continue
            steps.add(found.step)
            cell = Cell(text=formatting.number(found.estimate), interval=formatting.interval(found.low, found.high),
                        sort=float(found.estimate))
            if c.base_metric in arm.training_rewards:
                cell.classes.append("trained")
            if arm.name in best[c.label]:
                cell.classes.append("best")
            cell.title = f"step {found.step}, {found.n_seeds} seed(s)"
            if c.group != DIVERSITY:
                seeds = formatting.interval(found.seed_low, found.seed_high)
                cell.marks, tests = significance(comparisons, spec, arm.name, c.label, spec.direction(c.base_metric))
                cell.title += f", {found.n_prompts} prompts" + (f"; between seeds {seeds}" if seeds else "") + (f"; {tests}" if tests else "")
            cells.append(cell)
        early = sorted(s for s in steps if s != last)
        note = f"step {', '.join(map(str, early))} (not {last})" if early else ""
        rows.append(Row(arm.name, note if steps else "no results yet", cells))
    reference_rows = [Row(f"paper: {r['label']}", f"published, {r['table']}",
                          [Cell(text=formatting.number(r[c.label])) if c.label in r and not pd.isna(r[c.label]) else Cell()
                           for c in cols]) for _, r in published.iterrows()]
    groups = [(g, sum(1 for c in cols if c.group == g)) for g in dict.fromkeys(c.group for c in cols)]
    return MainTable(groups, cols, rows, reference_rows)


def main_table_frame(table: MainTable) -> pd.DataFrame:
    """The main table as plain data: one row per arm, value and interval per column, marks included."""
    records = []
    for row in table.rows:
        record: dict[str, object] = {"arm": row.label, "note": row.note}
        for column, cell in zip(table.columns, row.cells):
            record[column.label] = cell.sort
            record[f"{column.label} interval"] = cell.interval
            record[f"{column.label} marks"] = cell.marks
        records.append(record)
    return pd.DataFrame(records)


def export(tables: dict[str, pd.DataFrame], folder: Path) -> list[Path]:
    """Write each table as <name>.csv and <name>.json (records); returns the written paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in tables.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
        records = json.loads(frame.to_json(orient="records"))
        (folder / f"{name}.json").write_text(json.dumps(records, indent=1))
        written += [folder / f"{name}.csv", folder / f"{name}.json"]
    return written


def speedup_matrix(speedups: pd.DataFrame) -> pd.DataFrame:
    """arm x metric speed-up text (the long table, with reached fractions, is exported beside it)."""
    if speedups.empty:
        return pd.DataFrame(columns=["arm"])
    text = speedups.assign(text=[formatting.speedup(r.speedup, r.low, r.high, r.at_first_step, r.baseline_flat) for r in speedups.itertuples()])
    matrix = text.pivot(index="arm", columns="metric", values="text")
    return matrix.reindex(index=list(dict.fromkeys(speedups["arm"])), columns=list(dict.fromkeys(speedups["metric"]))).reset_index()
