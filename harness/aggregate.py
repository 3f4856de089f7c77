"""Gather a sweep's finished units into its results folder, in the report's input contract (reports/results.py).

Reads only what the units stored (never recomputes anything), so it runs in seconds and a partially
finished sweep gives partial results: `finished_units` and `expected_units` tell the report what is missing.
A done unit whose result files cannot be read (missing, truncated, garbage, a NaN metric) is marked failed
with the reason by `check_results`, which the sweep runs before counting finished units and aggregating, so its
numbers are left out, sweep.json's `notes` name it and the fix, and `--retry` recomputes it; every other unit's
results still appear.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor
from torchvision.utils import make_grid, save_image

from harness.evaluation.generate import image_path
from harness.evaluation.run import images_folder
from harness.evaluation.stored import read_rows, read_summary
from harness.evaluation.summary import image_key
from harness.geneval.evaluate import read_results
from harness.plan import Plan
from harness.store import Store
from harness.study import config_diff
from harness.units import PlannedUnit
from miro.config import to_dict
from miro.conventions import GUIDANCE_CONVENTION, TIME_CONVENTION
from miro.data.annotate import read_annotation
from miro.data.build import WORLD_TABLE
from miro.errors import MiroError
from miro.files import read_checked
from miro.manifest import git_state, package_versions, write_json_atomic

PER_IMAGE_METRICS = {"geneval_correct": "geneval"}  # images.jsonl column -> metric name; scorers keep their names
NOT_METRICS = {"prompt_index", "sample", "seed", "prompt", "group", "file", "geneval_objects"}
LEFT_OUT = "results left out: "  # how a unit marked failed by check_results says why
GRID_PROMPTS = 8
FAILURES_PER_ARM = 3
WORLD_FACTORS = ("blur_sigma", "contrast_blend", "noise_std", "clutter", "cut", "caption_wrong", "n_objects")


def finished(store: Store, units: list[PlannedUnit]) -> list[PlannedUnit]:
    return [u for u in units if store.state(u.unit.key) == "done"]


def control_points(store: Store, planned: PlannedUnit) -> list[tuple[str, float, Path]]:
    """(reward, target, images.jsonl) for each point a control unit measured."""
    outputs, work = store.outputs(planned.unit.key), store.work_dir(planned.unit.key)
    return [(r, float(t), work / r / f"sweep-{r}-{t:g}" / "images.jsonl") for r in outputs["rewards"] for t in outputs["values"]]


def result_files(store: Store, planned: PlannedUnit) -> list[Path]:
    """The files an evaluation or control unit's results are read from."""
    if planned.unit.kind == "evaluate":
        return [store.work_dir(planned.unit.key) / "images.jsonl", store.work_dir(planned.unit.key) / "summary.json"]
    return [images for _, _, images in control_points(store, planned)]


def check_results(store: Store, units: list[PlannedUnit]) -> None:
    """Mark failed, with the reason, each done unit whose result files do not read back (see the module docstring)."""
    for planned in finished(store, units):
        try:
            for path in result_files(store, planned):
                (read_summary if path.suffix == ".json" else read_rows)(path)
        except MiroError as error:
            store.set_state(planned.unit.key, "failed", reason=f"{LEFT_OUT}{error}")


def left_out_notes(store: Store, units: list[PlannedUnit]) -> list[str]:
    """One line per unit whose results are left out because they did not read back: which unit, the file, the fix."""
    notes = []
    for planned in units:
        reason = str(store.record(planned.unit.key).get("reason", ""))
        if store.state(planned.unit.key) == "failed" and reason.startswith(LEFT_OUT):
            notes.append(f"{planned.label} (unit {planned.unit.key}): {reason}")
    return notes


def primary(plan: Plan, evaluations: list[PlannedUnit]) -> list[PlannedUnit]:
    """The evaluations on the study's first suite (grids and GenEval failures are drawn from it)."""
    first = plan.study.evaluation[0].name
    return [u for u in evaluations if u.suite == first]


def metrics_table(store: Store, evaluations: list[PlannedUnit], first_suite: str) -> pd.DataFrame:
    """One row per (arm, seed, step, prompt, sample, metric); metrics of suites after the first are named
    "<suite>.<metric>" (PickScore on PartiPrompts is not PickScore on GenEval's prompts)."""
    frames = []
    for planned in evaluations:
        rows = read_rows(store.work_dir(planned.unit.key) / "images.jsonl")
        long = long_rows(rows)
        if planned.suite != first_suite:
            long = long.assign(metric=f"{planned.suite}." + long["metric"])
        single = rows[rows["group"] == "single_object"]
        if "geneval_objects" in rows and len(single):
            objects = single[["prompt_index", "group", "sample", "geneval_objects"]].rename(
                columns={"prompt_index": "prompt_id", "group": "tag", "geneval_objects": "value"})
            long = pd.concat([long, objects.assign(metric="objects_per_single_object_prompt")])
        frames.append(long.assign(arm=planned.arm, seed=planned.seed, step=planned.step))
    columns = ["arm", "seed", "step", "prompt_id", "tag", "sample", "metric", "value"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames).astype({"value": float})[columns]


def long_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-image evaluation rows (images.jsonl) -> (prompt_id, tag, sample, metric, value), GenEval verdicts named "geneval"."""
    metrics = [c for c in rows.columns if c not in NOT_METRICS]
    long = rows.melt(id_vars=["prompt_index", "group", "sample"], value_vars=metrics, var_name="metric")
    long["metric"] = long["metric"].replace(PER_IMAGE_METRICS)
    return long.rename(columns={"prompt_index": "prompt_id", "group": "tag"}).dropna(subset=["value"])


def controllability_table(store: Store, controls: list[PlannedUnit]) -> pd.DataFrame:
    """Per prompt: the metrics measured at each requested target of each swept reward."""
    frames = []
    for planned in controls:
        for reward, target, images in control_points(store, planned):
            per_prompt = long_rows(read_rows(images)).groupby(["prompt_id", "metric"], as_index=False)["value"].mean()
            frames.append(per_prompt.assign(arm=planned.arm, seed=planned.seed, step=planned.step, reward=reward, target=target))
    columns = ["arm", "seed", "step", "reward", "target", "prompt_id", "metric", "value"]
    return pd.concat(frames)[columns] if frames else pd.DataFrame(columns=columns)


def diversity_table(store: Store, evaluations: list[PlannedUnit], first_suite: str) -> pd.DataFrame:
    rows = []
    for planned in evaluations:
        summary = read_summary(store.work_dir(planned.unit.key) / "summary.json")
        prefix = "" if planned.suite == first_suite else f"{planned.suite}."
        for name, m in summary["metrics"].items():
            if name.startswith("diversity.") or name in ("fid", "kid"):
                rows.append({"arm": planned.arm, "seed": planned.seed, "step": planned.step,
                             "metric": prefix + name.removeprefix("diversity."), "value": m["value"],
                             "low": m.get("low", float("nan")), "high": m.get("high", float("nan"))})
    return pd.DataFrame(rows, columns=["arm", "seed", "step", "metric", "value", "low", "high"])


def last_step_units(evaluations: list[PlannedUnit], seed: int) -> dict[str, PlannedUnit]:
    """Per arm, its evaluation at the latest finished step for `seed`."""
    chosen: dict[str, PlannedUnit] = {}
    for planned in evaluations:
        if planned.seed == seed and planned.arm and (planned.arm not in chosen or (planned.step or 0) > (chosen[planned.arm].step or 0)):
            chosen[planned.arm] = planned
    return chosen


def write_grids(store: Store, chosen: dict[str, PlannedUnit], folder: Path) -> None:
    """The same prompts and seeds for every arm: one row per prompt."""
    folder.mkdir(parents=True, exist_ok=True)
    for arm, planned in chosen.items():
        rows = read_rows(store.work_dir(planned.unit.key) / "images.jsonl")
        rows = rows[rows["prompt_index"].isin(sorted(rows["prompt_index"].unique())[:GRID_PROMPTS])]
        work = store.work_dir(planned.unit.key)  # images are found from their (prompt, sample): the store may have moved
        images = [pil_to_tensor(Image.open(image_path(images_folder(work), p, k)).convert("RGB"))
                  for p, k in rows.sort_values(["prompt_index", "sample"])[["prompt_index", "sample"]].itertuples(index=False)]
        if images:
            grid = make_grid(torch.stack(images).float() / 255, nrow=int(rows["sample"].nunique()), padding=1)
            save_image(torch.nn.functional.interpolate(grid[None], scale_factor=2, mode="nearest")[0], folder / f"{arm}.png")


def write_failures(store: Store, chosen: dict[str, PlannedUnit], results: Path) -> None:
    """A few GenEval failures per arm with the detector's reasons, images copied into the sweep folder."""
    images = results / "failures"
    images.mkdir(parents=True, exist_ok=True)
    lines = []
    for arm, planned in chosen.items():
        path = store.work_dir(planned.unit.key) / "geneval.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
        for n, row in enumerate([r for r in rows if not r["correct"]][:FAILURES_PER_ARM]):
            target = images / f"{arm}-{n}.png"
            shutil.copyfile(image_path(images_folder(store.work_dir(planned.unit.key)), *image_key(row["filename"])), target)
            lines.append({"arm": arm, "seed": planned.seed, "step": planned.step, "prompt": row["prompt"], "tag": row["tag"],
                          "reason": row["reason"], "image": str(target.relative_to(results.parent))})
    (results / "geneval_failures.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def shape_confusion(store: Store, evaluations: list[PlannedUnit]) -> pd.DataFrame | None:
    """Images per (arm, seed, step, prompted class, class read) on one-class prompts (harness.geneval.shape_read;
    read "nothing" when no object was kept); None when no GenEval row carries the read (older results)."""
    rows = []
    for planned in evaluations:
        path = store.work_dir(planned.unit.key) / "geneval.jsonl"
        verdicts = read_results(path) if path.is_file() else []
        rows += [{"arm": planned.arm, "seed": planned.seed, "step": planned.step, "prompted": r["prompted_class"],
                  "read": r["read_class"]} for r in verdicts if r.get("read_class") is not None]
    if not rows:
        return None
    return pd.DataFrame(rows).groupby(["arm", "seed", "step", "prompted", "read"], as_index=False).size().rename(columns={"size": "images"})


def data_correlations(store: Store, data_units: list[PlannedUnit]) -> pd.DataFrame | None:
    """Pearson r of each reward score with each thing the world did to a sample (miro.data.build.write_world_table),
    over the samples the reward scored; None when no data unit kept a world table (real data has none)."""
    rows = []
    for planned in data_units:
        for world in sorted(store.work_dir(planned.unit.key).glob(f"*/{WORLD_TABLE}")):  # <work>/<data key>/world.parquet
            scores = read_annotation(world.parent / "annotations.parquet")
            fix = f"delete {store.unit_dir(planned.unit.key)} and run the same sweep command again to prepare the data again"
            joined = scores.merge(read_checked(world, pd.read_parquet, fix), on="sample_id")
            for reward in sorted(scores.attrs["scorers"]):
                ok = joined[joined[f"{reward}__status"] == "ok"]
                rows += [{"data": world.parent.name, "reward": reward, "factor": factor, "n_samples": len(ok),
                          "pearson": ok[reward].corr(ok[factor].astype(float))} for factor in WORLD_FACTORS]
    return pd.DataFrame(rows) if rows else None


def data_losses(store: Store, data_units: list[PlannedUnit], train_units: list[PlannedUnit]) -> dict[str, str]:
    """What each data stage could not use ("N of M samples (the first few and why)"), for the report's data facts."""
    facts = {}
    for kind, label in (("annotate", "annotation: samples without a usable score"), ("precompute", "precompute: unreadable samples")):
        outputs = [store.outputs(u.unit.key) for u in data_units if u.unit.kind == kind]
        if outputs:
            first = [example for o in outputs for example in o.get("first_unusable", [])][:3]
            facts[label] = (f"{sum(o.get('unusable', 0) for o in outputs)} of {sum(o.get('samples', 0) for o in outputs)}"
                            f"{' (' + '; '.join(first) + ')' if first else ''}")
    excluded = next((e for u in train_units if (e := store.outputs(u.unit.key).get("excluded"))), None)
    if excluded:
        facts["training: samples left out"] = ", ".join(f"{n} {reason}" for reason, n in excluded.items())
    return facts


def sweep_record(plan: Plan, store: Store, done_train: list[PlannedUnit], done_eval: list[PlannedUnit]) -> dict[str, Any]:
    sweep = plan.study
    by_name = {arm.name: arm for arm in sweep.arms}
    arms = []
    for arm in sweep.arms:
        base = by_name.get(arm.baseline) if arm.baseline else None
        diff = config_diff(base.config, arm.config) if base else {}
        arms.append({"name": arm.name, "baseline": arm.baseline, "ablates": list(arm.ablates),
                     "diff": {k: list(v) for k, v in diff.items()}, "training_rewards": list(arm.config.rewards.conditioned),
                     "eval_steps": list(sweep.steps_of(arm)), "seeds": list(sweep.seeds_of(arm)),
                     "config": to_dict(arm.config)})
    train_seconds: dict[str, float] = {}
    samples = 0
    for planned in done_train:
        outputs = store.outputs(planned.unit.key)
        train_seconds[str(planned.arm)] = train_seconds.get(str(planned.arm), 0.0) + float(outputs.get("train_seconds", 0.0))
        samples = int(outputs.get("samples", samples))
    fingerprints: dict[str, str] = {}
    device = "unknown"
    for planned in done_eval:
        summary = read_summary(store.work_dir(planned.unit.key) / "summary.json")
        device = summary.get("throughput", {}).get("device", device)
        fingerprints.update({k: v["fingerprint"] for k, v in summary["metrics"].items() if "fingerprint" in v})
    expected = sum(len(units) for _, units in plan.waves)
    finished_units = sum(store.state(u.unit.key) == "done" for _, units in plan.waves for u in units)
    return {
        "name": sweep.name, "description": sweep.description, "seeds": list(sweep.seeds), "eval_steps": list(sweep.eval_steps),
        "arms": arms, "lower_is_better": ["fid", "kid", *(f"{s.name}.{m}" for s in sweep.evaluation for m in ("fid", "kid"))],
        "manifest": {"git": git_state(), "packages": package_versions(), "device": device,
                     "conventions": {"time": TIME_CONVENTION, "guidance": GUIDANCE_CONVENTION}, "scorer_fingerprints": fingerprints},
        "compute": {"train_seconds": train_seconds, "samples": samples, **data_losses(store, finished(store, plan.data), done_train)},
        "expected_units": expected, "finished_units": finished_units,
        "notes": left_out_notes(store, [*plan.evaluate, *plan.control]),
    }


def aggregate(plan: Plan, store: Store, sweep_dir: Path) -> Path:
    """Write sweep.json and results/ for `plan` from the store; returns the sweep folder."""
    results = sweep_dir / "results"
    results.mkdir(parents=True, exist_ok=True)
    done_train, done_eval = finished(store, plan.train), finished(store, plan.evaluate)
    first = plan.study.evaluation[0].name
    metrics_table(store, done_eval, first).to_parquet(results / "metrics.parquet", index=False)
    diversity_table(store, done_eval, first).to_parquet(results / "diversity.parquet", index=False)
    correlations = data_correlations(store, finished(store, plan.data))
    if correlations is not None:
        correlations.to_csv(results / "data_correlations.csv", index=False)
    controls = finished(store, plan.control)
    if controls:  # absent rather than empty: the report then says the sweep did not produce it
        controllability_table(store, controls).to_parquet(results / "controllability.parquet", index=False)
    if primary(plan, done_eval):
        shown = primary(plan, done_eval)
        chosen = last_step_units(shown, min(u.seed or 0 for u in shown))
        write_grids(store, chosen, results / "grids")
        write_failures(store, chosen, results)
        confusion = shape_confusion(store, shown)
        if confusion is not None:
            confusion.to_csv(results / "shape_confusion.csv", index=False)
    for planned in finished(store, plan.tune):
        study = json.loads((store.work_dir(planned.unit.key) / "pareto.json").read_text())
        write_json_atomic(results / "pareto.json", {"arm": planned.arm, "seed": planned.seed, "step": planned.step, **study})
    write_json_atomic(sweep_dir / "sweep.json", sweep_record(plan, store, done_train, done_eval))
    return sweep_dir
