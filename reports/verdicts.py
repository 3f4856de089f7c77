"""One verdict per arm and comparison that states only the differences the statistics support.

A difference is claimed only when its Holm-adjusted p-value is below ALPHA; everything else is listed as
"no significant difference". Findings on a reward either compared arm was trained on are set apart: the
arm was guided toward that score, so it is not independent evidence.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from reports import formatting
from reports.comparisons import ALPHA
from reports.results import SweepSpec

TRAINED_LABEL = "on rewards either arm was trained on (not independent evidence)"


@dataclass(frozen=True)
class Verdict:
    """What one comparison supports: held-out findings, findings on trained rewards, and the rest."""

    arm: str
    against: str
    head: str
    held_out: list[str]
    trained: list[str]
    quiet: list[str]

    @property
    def text(self) -> str:
        """The verdict as one sentence."""
        parts = []
        if self.held_out:
            parts.append("held out: " + "; ".join(self.held_out))
        if self.trained:
            parts.append(f"{TRAINED_LABEL}: " + "; ".join(self.trained))
        if self.quiet:
            parts.append("no significant difference in " + ", ".join(self.quiet))
        return f"{self.head}: " + ". ".join(parts) + "."


def finding(row: pd.Series, direction: int) -> str:
    """'shapes_quality +0.070 [0.050, 0.090] (better, Holm p < 0.001)': the prompt-bootstrap interval; the
    test used and the between-seed interval are in the comparisons table."""
    sign = 1 if row["difference"] > 0 else -1
    effect = "changed" if direction == 0 else "better" if sign * direction > 0 else "worse"
    return (f"{row['metric']} {formatting.signed(row['difference'])} {formatting.interval(row['low'], row['high'])} "
            f"({effect}, Holm {formatting.p_value(row['p_holm'])})")


def grouped(rows: pd.DataFrame) -> list[str]:
    """Metric labels with per-task parts folded into one entry: 'geneval[counting, position]'."""
    pairs = list(zip(rows["metric"], rows["base_metric"]))
    tasks: dict[str, list[str]] = {}
    for label, base in pairs:
        if label != base:
            tasks.setdefault(base, []).append(label[len(base) + 1:-1])
    return [label for label, base in pairs if label == base] + [f"{b}[{', '.join(t)}]" for b, t in tasks.items()]


def verdict(arm: str, against: str, rows: pd.DataFrame, spec: SweepSpec) -> Verdict:
    """The verdict of one comparison (rows: its metrics, already Holm-adjusted within their families)."""
    first = rows.iloc[0]
    head = f"{arm} vs {against} (step {first['step']}, {first['n_seeds']} seed(s), {first['n_prompts']} prompts)"
    claims = rows[rows["p_holm"] < ALPHA].sort_values("p_holm")
    texts = {t: [finding(r, spec.direction(r["base_metric"])) for _, r in claims[claims["trained"] == t].iterrows()]
             for t in (False, True)}
    return Verdict(arm, against, head, texts[False], texts[True], grouped(rows[rows["p_holm"] >= ALPHA]))


def verdicts(comparisons: pd.DataFrame, spec: SweepSpec) -> list[Verdict]:
    """Every comparison's verdict, arms in sweep order (against its baseline first, then the no-reward baseline)."""
    return [verdict(str(arm), str(against), rows, spec)
            for (arm, against), rows in comparisons.groupby(["arm", "against"], sort=False)]
