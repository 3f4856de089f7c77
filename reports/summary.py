"""The report's opening facts: what each arm is (its diff against its baseline), the sampler it was
evaluated with in both guidance forms, the data and compute used, and the manifest of the run."""
from __future__ import annotations

from typing import Any

import pandas as pd

from harness.geneval.shape_read import NOTHING
from miro.conventions import scale_to_cfg_rate
from reports import formatting
from reports.results import SweepResults, SweepSpec
from reports.roles import role_of, roles


def describe(value: Any) -> str:
    """A config value as one short string (lists joined, empty ones named)."""
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]" if value else "[] (none)"
    return str(value)


def guidance(config: dict[str, Any]) -> str:
    """'g = 4 (MIRO cfg_rate w = 3)': the common form and the released code's, converted by miro.conventions."""
    scale = config.get("sample", {}).get("guidance_scale")
    if scale is None:
        return "–"
    return f"g = {scale:g} (MIRO cfg_rate w = {scale_to_cfg_rate(scale):g})"


def arms_overview(spec: SweepSpec) -> pd.DataFrame:
    """One row per arm: its role, baseline, declared ablation, every config difference, training rewards, guidance, time."""
    seconds = spec.compute.get("train_seconds", {})
    who = roles(spec)
    return pd.DataFrame([{
        "arm": a.name, "role": role_of(a, who), "baseline": a.baseline or "–", "ablates": ", ".join(a.ablates) or "–",
        "differs from baseline in": "; ".join(f"{k}: {describe(b)} → {describe(v)}" for k, (b, v) in a.diff.items()) or "–",
        "training rewards": ", ".join(a.training_rewards) or "none",
        "guidance": guidance(a.config),
        "train time (all seeds)": formatting.duration(seconds[a.name]) if a.name in seconds else "–",
    } for a in spec.arms])


def data_and_compute(results: SweepResults) -> list[tuple[str, str]]:
    """(label, value) facts: training data of the reference arm, evaluation set size, compute totals."""
    spec, metrics = results.spec, results.metrics
    first = spec.arm(spec.reference or spec.arms[0].name).config.get("data", {})
    facts = [("training data", ", ".join(f"{k} = {v}" for k, v in first.items() if v != "")),
             ("seeds", ", ".join(map(str, spec.seeds))),
             ("evaluated steps", ", ".join(map(str, spec.eval_steps))),
             ("evaluation prompts", str(metrics["prompt_id"].nunique())),
             ("images per prompt and seed", str(metrics["sample"].nunique())),
             ("units finished", f"{spec.finished_units} of {spec.expected_units}")]
    seconds = spec.compute.get("train_seconds", {})
    if seconds:
        facts.append(("training time, all arms", formatting.duration(sum(seconds.values()))))
    facts += [(key.replace("_", " "), describe(value)) for key, value in spec.compute.items() if key != "train_seconds"]
    return facts


def correlation_matrix(correlations: pd.DataFrame | None) -> tuple[pd.DataFrame | None, str]:
    """(reward x factor Pearson r, one-line reading: each reward's strongest factor), or (None, "") without a world table."""
    if correlations is None or correlations.empty:
        return None, ""
    first = correlations[correlations["data"] == correlations["data"].iloc[0]]  # the sweep's (first) data folder
    matrix = first.pivot(index="reward", columns="factor", values="pearson")
    matrix = matrix[list(dict.fromkeys(first["factor"]))]
    links = []
    for reward, row in matrix.iterrows():
        known = row.dropna()  # NaN: a factor the world never varied
        if len(known):
            factor = known.abs().idxmax()
            links.append(f"{reward} with {factor} (r = {formatting.number(known[factor])})")
    reading = (f"Over {first['n_samples'].max()} training samples, each reward's strongest link to what the world did to a "
               f"sample: {'; '.join(links)}." if links else "")
    return matrix.reset_index(), reading


def confusion_view(confusion: pd.DataFrame | None) -> tuple[pd.DataFrame | None, str]:
    """(per arm at its last step, seeds pooled: prompted class x class read, in images; one-line reading), or
    (None, "") without the class reads. The reading gives each arm's share read as prompted and drawn as nothing."""
    if confusion is None or confusion.empty:
        return None, ""
    last = confusion[confusion["step"] == confusion.groupby("arm")["step"].transform("max")]
    reads = [r for r in dict.fromkeys(sorted(last["prompted"].unique()) + sorted(last["read"].unique())) if r != NOTHING]
    matrix = last.pivot_table(index=["arm", "step", "prompted"], columns="read", values="images", aggfunc="sum", fill_value=0)
    matrix = matrix.reindex(columns=[*reads, NOTHING], fill_value=0).astype(int)
    shares = []
    for arm, rows in last.groupby("arm", sort=False):
        total = rows["images"].sum()
        right = rows.loc[rows["prompted"] == rows["read"], "images"].sum()
        blank = rows.loc[rows["read"] == NOTHING, "images"].sum()
        shares.append(f"{arm} {formatting.number(right / total)} read as prompted, {formatting.number(blank / total)} nothing")
    reading = f"Of the images of one-class prompts at each arm's last step: {'; '.join(shares)}."
    matrix.columns.name = None
    return matrix.reset_index(), reading


def manifest_items(spec: SweepSpec) -> dict[str, list[tuple[str, str]]]:
    """Section -> (name, value) rows: code, devices, packages, conventions, scorer fingerprints."""
    manifest = spec.manifest
    git = manifest.get("git", {})
    dirty = {True: " (uncommitted changes)", False: " (clean)"}.get(git.get("dirty"), "")
    return {
        "code and device": [("git commit", f"{git.get('sha') or 'unknown'}{dirty}"), ("device", str(manifest.get("device", "unknown"))),
                            ("seeds", ", ".join(map(str, spec.seeds)))],
        "conventions": [(k, str(v)) for k, v in manifest.get("conventions", {}).items()],
        "packages": [(k, str(v)) for k, v in sorted(manifest.get("packages", {}).items())],
        "scorer fingerprints": [(k, str(v)) for k, v in sorted(manifest.get("scorer_fingerprints", {}).items())],
    }
