"""Per-image rows and the summary of one evaluation, with honest intervals and each metric's role.

Rows: one per planned image that exists (prompt_index, sample, seed, prompt, group, file, then one column
per scorer, NaN unless the score is "ok", and geneval_correct / geneval_objects when GenEval ran). Every
metric of the summary has a headline `value` (for averaged metrics the mean over prompts, with a seeded
prompt-bootstrap interval `low`/`high`: prompts are the unit, harness.stats), its `role` (training reward
or held out) and, for scorers, the fingerprint the numbers came from.
"""
from __future__ import annotations

import json
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.evaluation.generate import image_path, image_seed
from harness.geneval.evaluate import summarize as geneval_summary
from harness.prompts import Prompt
from harness.stats import bootstrap_mean, prompt_means
from miro.errors import MiroError

BOOTSTRAP_RESAMPLES = 2000


def image_rows(folder: str | Path, prompts: Sequence[Prompt], samples_per_prompt: int, seed: int,
               scores: pd.DataFrame | None, geneval: Sequence[Mapping[str, Any]] | None) -> pd.DataFrame:
    """The per-image table of the planned images found on disk (extra images in the folder are left out)."""
    rows = [{"prompt_index": p.index, "sample": k, "seed": image_seed(seed, p.index, k), "prompt": p.text,
             "group": p.group, "file": str(image_path(folder, p.index, k))}
            for p in prompts for k in range(samples_per_prompt) if image_path(folder, p.index, k).is_file()]
    table = pd.DataFrame(rows, columns=["prompt_index", "sample", "seed", "prompt", "group", "file"])
    keys = ["prompt_index", "sample"]
    if scores is not None:
        names = sorted(scores.attrs["scorers"])
        values = scores[keys].copy()
        for name in names:
            values[name] = scores[name].where(scores[f"{name}__status"] == "ok")
        table = table.merge(values, on=keys, how="left")
    if geneval is not None:
        verdicts = pd.DataFrame([{**dict(zip(keys, image_key(r["filename"]))), "geneval_correct": float(bool(r["correct"])),
                                  "geneval_shape_agnostic": float(r["correct_shape_agnostic"]) if "correct_shape_agnostic" in r else np.nan,
                                  "geneval_shape_read": np.nan if r.get("shape_read") is None else float(r["shape_read"]),
                                  "geneval_objects": sum(len(v) for v in json.loads(r["details"]).values())}
                                 for r in geneval], columns=[*keys, "geneval_correct", "geneval_shape_agnostic", "geneval_shape_read", "geneval_objects"])
        table = table.merge(verdicts, on=keys, how="left")
    return table


def image_key(filename: str | Path) -> tuple[int, int]:
    """(prompt index, sample) of <folder>/<index>/samples/<n>.png."""
    path = Path(filename)
    return int(path.parts[-3]), int(path.stem)


def mean_over_prompts(table: pd.DataFrame, column: str, strata: bool = False) -> dict[str, Any]:
    """`value`: the mean of the per-prompt means of `column` (NaN rows left out), with a 95% prompt-bootstrap
    interval (`low`, `high`).

    With `strata` the groups (GenEval tags) are weighed equally, as GenEval's overall score does.
    """
    kept = table[table[column].notna()]
    if kept.empty:
        return {"value": None, "low": None, "high": None, "n_images": 0, "n_prompts": 0, "missing": len(table)}
    means = prompt_means(kept["prompt_index"].tolist(), kept[column].to_numpy())
    values = np.array(list(means.values()))
    groups = kept.drop_duplicates("prompt_index").set_index("prompt_index")["group"]
    out: dict[str, Any] = {"value": float(values[0]), "low": None, "high": None}  # one prompt: no interval
    if len(values) >= 2:
        labels = [groups[p] for p in means] if strata else None
        interval = bootstrap_mean(values, strata=labels, n_resamples=BOOTSTRAP_RESAMPLES)
        out.update(value=interval.estimate, low=interval.low, high=interval.high, level=interval.level)
    return {**out, "n_images": len(kept), "n_prompts": len(values), "missing": len(table) - len(kept)}


def scorer_metrics(table: pd.DataFrame, records: Mapping[str, Mapping[str, Any]], roles: Mapping[str, str]) -> dict[str, Any]:
    """Per scorer: prompt-mean with interval, role, fingerprint, direction."""
    return {name: {**mean_over_prompts(table, name), "role": roles[name], "fingerprint": record["fingerprint"],
                   "higher_is_better": record["higher_is_better"]}
            for name, record in sorted(records.items())}


def geneval_metrics(table: pd.DataFrame, rows: Sequence[Mapping[str, Any]], role: str) -> dict[str, Any]:
    """GenEval's own summary (tasks, overall, % images, % prompts), an interval on overall (tags weighed
    equally, prompts resampled within tags), the shape-agnostic accuracy (harness.geneval.shape_agnostic), the rate
    at which the drawn shape is the prompted one (harness.geneval.shape_read) and the mean number of objects found on
    single-object prompts, which shows when a reward buys quality with extra or bigger objects."""
    planned = set(zip(table["prompt_index"], table["sample"]))
    rows = [r for r in rows if image_key(r["filename"]) in planned]
    if not rows:
        raise MiroError("no GenEval verdicts for the planned images; generate the images first")
    interval = mean_over_prompts(table, "geneval_correct", strata=True)  # its value is GenEval's overall
    single = table[(table["group"] == "single_object") & table["geneval_objects"].notna()]
    agnostic = mean_over_prompts(table, "geneval_shape_agnostic", strata=True)
    read = mean_over_prompts(table, "geneval_shape_read", strata=True)
    return {**interval, **asdict(geneval_summary(rows)), "role": role,
            "shape_agnostic": {key: agnostic.get(key) for key in ("value", "low", "high", "level")},
            "shape_read": {key: read.get(key) for key in ("value", "low", "high", "level")},
            "objects_on_single_object_prompts": float(single["geneval_objects"].mean()) if len(single) else None}


def diversity_metrics(per_prompt: Mapping[Hashable, Mapping[str, float]], features: str, role: str) -> dict[str, Any]:
    """"diversity.<measure>": mean over prompts with its interval; `features` names what it was measured on."""
    frame = pd.DataFrame([{"prompt_index": p, "group": "", **v} for p, v in per_prompt.items()])
    out = {}
    for name in ("pairwise_distance", "vendi"):
        entry = mean_over_prompts(frame, name)  # one row per prompt: its image counts are not image counts
        out[f"diversity.{name}"] = {key: entry.get(key) for key in ("value", "low", "high", "level", "n_prompts")} | {"features": features, "role": role}
    return out
