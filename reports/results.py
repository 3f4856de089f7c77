"""The input contract of a report: a stored sweep directory, loaded and checked before anything is drawn.

The sweep runner writes these files; the report only reads them (it never trains or scores). A file that
is missing means "not finished yet" and the report says so; a file that is present but unreadable or of
the wrong shape raises a one-line `MiroError` naming the file and the fix.

<sweep>/sweep.json  (required)
    {"name": str, "description": str, "seeds": [int], "eval_steps": [int],
     "arms": [{"name": str, "baseline": str | null, "ablates": [str],
               "diff": {dotted.config.path: [baseline_value, arm_value]},
               "training_rewards": [scorer names the arm was conditioned on; [] for the no-reward baseline],
               "config": {resolved RunConfig, miro.config.to_dict},
               "eval_steps": [int], "seeds": [int] (optional: this arm's, when not all of the sweep's)}],
     "manifest": {"git": {"sha", "dirty"}, "packages": {name: version}, "device": str,
                  "conventions": {name: str}, "scorer_fingerprints": {scorer: fingerprint}},
     "compute": {"train_seconds": {arm: seconds over all its seeds}, "samples": int, ...any other totals},
     "expected_units": int, "finished_units": int,
     "lower_is_better": [metric],  (optional; fid and kid are always lower-is-better)
     "notes": [str]}               (optional; units whose results were left out, each naming its file and fix)
<sweep>/results/metrics.parquet  (required for any number; long format, one row per image and metric)
    arm str, seed int, step int, prompt_id int, tag str (prompt category, e.g. the GenEval task),
    sample int, metric str, value float.
    Metrics: "geneval", "geneval_shape_agnostic" and "geneval_shape_read" (0/1 per image: judged per image,
    McNemar-tested, overall = unweighted mean of the per-tag means as GenEval defines it; shape_read only on
    prompts naming one class, where something was drawn), every reward scorer by its
    registry name (shapes_quality, hpsv2, ...), and "objects_per_single_object_prompt" (no better
    direction: reported and tested, never marked best). All higher-is-better unless listed above.
<sweep>/results/diversity.parquet  (optional; set-level measures with their own interval)
    arm, seed, step, metric ("pairwise_distance", "fid", "kid", ...), value, low, high.
<sweep>/results/controllability.parquet  (optional; one row per image or prompt of a reward-target sweep)
    arm, seed, step, reward (whose target was swept), target (float in [0, 1]), prompt_id, metric, value.
<sweep>/results/best_of_n.parquet  (optional)
    arm, seed, step, selector (scorer name), n, metric, value (mean over prompts).
<sweep>/results/pareto.json  (optional; an inference-knob tuning study)
    {"arm": str, "objectives": [m1, m2], "trials": [{"params": {...}, "values": [v1, v2], "pareto": bool}]}
<sweep>/results/geneval_failures.jsonl  (optional; one JSON object a line)
    {"arm", "seed", "step", "prompt", "tag", "reason", "image": PNG path relative to the sweep dir}
<sweep>/results/grids/<arm>.png  (optional; the same prompts (rows) and seeds for every arm)
<sweep>/results/data_correlations.csv  (optional; only a generated world (shapes) knows what degraded each sample)
    data (data folder), reward, factor (blur_sigma, caption_wrong, ...), n_samples int, pearson float (NaN: a constant factor).
<sweep>/results/shape_confusion.csv  (optional; GenEval results from before the class read was kept have none)
    arm, seed int, step int, prompted (the class a one-class prompt names), read (the class of the most confident
    kept object, or "nothing"), images int.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from miro.errors import MiroError, unknown_name_error

RERUN = "run the same sweep command again to rewrite it (finished units are kept)"
BINARY_METRICS = ("geneval", "geneval_shape_agnostic", "geneval_shape_read")
UNDIRECTED_METRICS = ("objects_per_single_object_prompt",)
ALWAYS_LOWER_IS_BETTER = ("fid", "kid")
# Where a metric's values can lie; an interval is clipped to it (a two-seed t-interval otherwise runs
# below zero for FID). KID is absent on purpose: its unbiased estimate is negative when the two sets are
# closer than sampling noise, so its interval may be too, and the report says so.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "geneval": (0.0, 1.0), "geneval_shape_agnostic": (0.0, 1.0), "geneval_shape_read": (0.0, 1.0), "shapes_alignment": (0.0, 1.0),
    "shapes_quality": (0.0, 1.0), "shapes_size": (0.0, 1.0), "objects_per_single_object_prompt": (0.0, float("inf")),
    "fid": (0.0, float("inf")), "pairwise_distance": (0.0, float("inf")), "vendi": (1.0, float("inf")),
}


def clip_to_range(metric: str, low: float | None, high: float | None) -> tuple[float | None, float | None]:
    """(low, high) clipped to the metric's range (by its base name, "geneval[counting]" -> "geneval")."""
    lo, hi = METRIC_RANGES.get(metric.partition("[")[0], (-float("inf"), float("inf")))
    def clip(v: float | None) -> float | None:
        return None if v is None or v != v else min(max(float(v), lo), hi)
    return clip(low), clip(high)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

METRICS_COLUMNS = {"arm": str, "seed": int, "step": int, "prompt_id": int, "tag": str, "sample": int, "metric": str,
                   "value": float}
DIVERSITY_COLUMNS = {"arm": str, "seed": int, "step": int, "metric": str, "value": float, "low": float, "high": float}
CONTROLLABILITY_COLUMNS = {"arm": str, "seed": int, "step": int, "reward": str, "target": float, "prompt_id": int,
                           "metric": str, "value": float}
BEST_OF_N_COLUMNS = {"arm": str, "seed": int, "step": int, "selector": str, "n": int, "metric": str, "value": float}
CORRELATION_COLUMNS = {"data": str, "reward": str, "factor": str, "n_samples": int, "pearson": float}
CONFUSION_COLUMNS = {"arm": str, "seed": int, "step": int, "prompted": str, "read": str, "images": int}
FAILURE_KEYS = ("arm", "seed", "step", "prompt", "tag", "reason", "image")


@dataclass(frozen=True)
class ArmSpec:
    """One arm as the sweep declared it."""

    name: str
    baseline: str | None
    ablates: tuple[str, ...]
    diff: dict[str, tuple[Any, Any]]
    training_rewards: tuple[str, ...]
    config: dict[str, Any]
    eval_steps: tuple[int, ...] = ()  # empty: the sweep's
    seeds: tuple[int, ...] = ()  # empty: the sweep's


@dataclass(frozen=True)
class SweepSpec:
    """sweep.json: what was planned, with what code, and how far it got."""

    name: str
    description: str
    seeds: tuple[int, ...]
    eval_steps: tuple[int, ...]
    arms: tuple[ArmSpec, ...]
    manifest: dict[str, Any]
    compute: dict[str, Any]
    expected_units: int
    finished_units: int
    lower_is_better: frozenset[str]
    notes: tuple[str, ...] = ()  # units whose results were left out, each with its file and fix

    def arm(self, name: str) -> ArmSpec:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise unknown_name_error("arm", name, [a.name for a in self.arms])

    @property
    def reference(self) -> str | None:
        """The no-reward baseline every reward arm is also compared with: the first arm trained on no reward."""
        return next((a.name for a in self.arms if not a.training_rewards), None)

    def direction(self, metric: str) -> int:
        """+1 higher is better, -1 lower is better, 0 no better direction."""
        if metric in UNDIRECTED_METRICS:
            return 0
        return -1 if metric in self.lower_is_better else 1


@dataclass
class SweepResults:
    """Everything a report is built from; `missing` lists unfinished work, `absent` optional outputs not made."""

    root: Path
    spec: SweepSpec
    metrics: pd.DataFrame
    diversity: pd.DataFrame | None = None
    controllability: pd.DataFrame | None = None
    best_of_n: pd.DataFrame | None = None
    pareto: dict[str, Any] | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)
    grids: dict[str, Path] = field(default_factory=dict)
    data_correlations: pd.DataFrame | None = None
    shape_confusion: pd.DataFrame | None = None
    missing: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)


def _need(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise MiroError(f"{where} lacks the key {key!r}; {RERUN}")
    if not isinstance(data[key], kind) or (kind is int and isinstance(data[key], bool)):
        raise MiroError(f"{where}: {key!r} must be {getattr(kind, '__name__', kind)}, got {type(data[key]).__name__}; {RERUN}")
    return data[key]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise MiroError(f"{path} is not valid JSON (line {err.lineno}: {err.msg}); {RERUN}") from None


def _arm(data: Any, where: str) -> ArmSpec:
    if not isinstance(data, dict):
        raise MiroError(f"{where} must be an object; {RERUN}")
    diff = _need(data, "diff", dict, where)
    if any(not isinstance(v, list) or len(v) != 2 for v in diff.values()):
        raise MiroError(f"{where}.diff values must be [baseline_value, arm_value] pairs; {RERUN}")
    baseline = data.get("baseline")
    if baseline is not None and not isinstance(baseline, str):
        raise MiroError(f"{where}.baseline must be an arm name or null; {RERUN}")
    return ArmSpec(name=_need(data, "name", str, where), baseline=baseline,
                   ablates=tuple(_need(data, "ablates", list, where)), diff={k: (v[0], v[1]) for k, v in diff.items()},
                   training_rewards=tuple(_need(data, "training_rewards", list, where)),
                   config=_need(data, "config", dict, where), eval_steps=tuple(data.get("eval_steps", ())),
                   seeds=tuple(data.get("seeds", ())))


def read_spec(path: Path) -> SweepSpec:
    """Parse and check sweep.json: keys and types, unique arm names, baselines that exist."""
    data = _read_json(path)
    where = str(path)
    if not isinstance(data, dict):
        raise MiroError(f"{path} must hold a JSON object; {RERUN}")
    arms = tuple(_arm(a, f"{where}: arms[{i}]") for i, a in enumerate(_need(data, "arms", list, where)))
    names = [a.name for a in arms]
    if not arms or len(set(names)) != len(names):
        raise MiroError(f"{path} must list at least one arm and each name once, got {names}; {RERUN}")
    for arm in arms:
        if arm.baseline is not None and arm.baseline not in names:
            raise unknown_name_error(f"baseline of arm {arm.name} in {path}", arm.baseline, names)
    return SweepSpec(
        name=_need(data, "name", str, where), description=_need(data, "description", str, where),
        seeds=tuple(_need(data, "seeds", list, where)), eval_steps=tuple(sorted(_need(data, "eval_steps", list, where))),
        arms=arms, manifest=_need(data, "manifest", dict, where), compute=_need(data, "compute", dict, where),
        expected_units=_need(data, "expected_units", int, where), finished_units=_need(data, "finished_units", int, where),
        lower_is_better=frozenset(data.get("lower_is_better", [])) | frozenset(ALWAYS_LOWER_IS_BETTER),
        notes=tuple(str(note) for note in data.get("notes", [])),
    )


def read_table(path: Path, columns: Mapping[str, type], arms: Sequence[str], notes: list[str]) -> pd.DataFrame:
    """A parquet file with the contract's columns, cast to their types, only known arms; NaN values (failed
    scores) are dropped and counted in `notes`."""
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises many types for a truncated or foreign file
        raise MiroError(f"{path} is not a readable parquet file ({type(err).__name__}); {RERUN}") from None
    lacking = [c for c in columns if c not in frame.columns]
    if lacking:
        raise MiroError(f"{path} lacks the columns {lacking} (it has {list(frame.columns)}); {RERUN}")
    try:
        frame = frame[list(columns)].astype(dict(columns))
    except (TypeError, ValueError) as err:
        raise MiroError(f"{path} has a column of the wrong type ({err}); {RERUN}") from None
    unknown = sorted(set(frame["arm"]) - set(arms))
    if unknown:
        raise MiroError(f"{path} holds arms {unknown} that sweep.json does not declare; {RERUN}")
    failed = int(frame["value"].isna().sum())
    if failed:
        notes.append(f"{failed} values in {path.name} are NaN (failed scores) and are left out")
    return frame.dropna(subset=["value"]).reset_index(drop=True)


def _failures(path: Path, root: Path, notes: list[str]) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise MiroError(f"{path}:{number} is not valid JSON ({err.msg}); {RERUN}") from None
        if not isinstance(row, dict) or any(k not in row for k in FAILURE_KEYS):
            raise MiroError(f"{path}:{number} must be an object with keys {list(FAILURE_KEYS)}; {RERUN}")
        image = (root / str(row["image"])).resolve()
        found = image.is_relative_to(root.resolve()) and image.is_file()
        if not found:
            notes.append(f"GenEval failure image {row['image']} is missing")
        rows.append({**row, "image": image if found else None})
    return rows


def _csv(path: Path, columns: Mapping[str, type]) -> pd.DataFrame:
    """A results CSV with `columns` of their types (others are ignored)."""
    try:
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""])  # only an empty cell is missing: a name like "NA" stays text
    except (ValueError, pd.errors.ParserError) as err:
        raise MiroError(f"{path} is not a readable CSV file ({type(err).__name__}); {RERUN}") from None
    lacking = [c for c in columns if c not in frame.columns]
    if lacking:
        raise MiroError(f"{path} lacks the columns {lacking} (it has {list(frame.columns)}); {RERUN}")
    try:
        return frame[list(columns)].astype(dict(columns))
    except (TypeError, ValueError) as err:
        raise MiroError(f"{path} has a column of the wrong type ({err}); {RERUN}") from None


def _pareto(path: Path) -> dict[str, Any]:
    data = _read_json(path)
    where = str(path)
    if not isinstance(data, dict):
        raise MiroError(f"{path} must hold a JSON object; {RERUN}")
    objectives = _need(data, "objectives", list, where)
    trials = _need(data, "trials", list, where)
    if len(objectives) != 2 or any(not isinstance(t, dict) or len(t.get("values", [])) != 2 for t in trials):
        raise MiroError(f"{path} needs two objectives and two values per trial; {RERUN}")
    return {"arm": _need(data, "arm", str, where), "objectives": objectives, "trials": trials}


def _grids(folder: Path, arms: Sequence[str]) -> dict[str, Path]:
    grids = {}
    for arm in arms:
        path = folder / f"{arm}.png"
        if not path.resolve().is_relative_to(folder.resolve()):  # arm names come from sweep.json: a file anyone may edit
            raise MiroError(f'arm name "{arm}" in sweep.json points outside {folder}; arm names may not hold "/" or ".."; {RERUN}')
        if path.is_file():
            if path.read_bytes()[:8] != PNG_SIGNATURE:
                raise MiroError(f"{path} is not a PNG image; {RERUN}")
            grids[arm] = path
    return grids


def coverage_notes(spec: SweepSpec, metrics: pd.DataFrame) -> list[str]:
    """What the sweep planned but the metrics do not hold yet: (seed, step) per arm, then metrics per arm."""
    notes = []
    done = set(metrics[["arm", "seed", "step"]].drop_duplicates().itertuples(index=False, name=None))
    for arm in spec.arms:
        steps, seeds = arm.eval_steps or spec.eval_steps, arm.seeds or spec.seeds
        lacking = [(s, t) for s in seeds for t in steps if (arm.name, s, t) not in done]
        if len(lacking) == len(seeds) * len(steps):
            notes.append(f"arm {arm.name}: no results yet")
        elif lacking:
            notes.append(f"arm {arm.name}: no results for " + ", ".join(f"seed {s} step {t}" for s, t in lacking))
    every = set(metrics["metric"])
    for arm, group in metrics.groupby("arm"):
        lacking_metrics = sorted(every - set(group["metric"]))
        if lacking_metrics:
            notes.append(f"arm {arm}: no values for {', '.join(lacking_metrics)}")
    return notes


def load(sweep_dir: str | Path) -> SweepResults:
    """Read and check a sweep directory (see the module docstring); partial sweeps load with notes."""
    root = Path(sweep_dir)
    if not (root / "sweep.json").is_file():
        raise MiroError(f"{root / 'sweep.json'} not found; pass the folder a sweep wrote (nox -s sweep) to `python -m reports`")
    spec = read_spec(root / "sweep.json")
    arms = [a.name for a in spec.arms]
    results = root / "results"
    missing: list[str] = []
    if spec.finished_units < spec.expected_units:
        missing.append(f"{spec.finished_units} of {spec.expected_units} units finished")
    missing += spec.notes
    if (results / "metrics.parquet").is_file():
        metrics = read_table(results / "metrics.parquet", METRICS_COLUMNS, arms, missing)
        missing += coverage_notes(spec, metrics)
    else:
        metrics = pd.DataFrame({c: pd.Series(dtype=t) for c, t in METRICS_COLUMNS.items()})
        missing.append("no evaluation results yet (results/metrics.parquet is missing)")
    out = SweepResults(root=root, spec=spec, metrics=metrics, missing=missing)
    optional = {"diversity": DIVERSITY_COLUMNS, "controllability": CONTROLLABILITY_COLUMNS, "best_of_n": BEST_OF_N_COLUMNS}
    for name, columns in optional.items():
        path = results / f"{name}.parquet"
        if path.is_file():
            setattr(out, name, read_table(path, columns, arms, missing))
        else:
            out.absent.append(f"{name} (results/{name}.parquet)")
    if (results / "pareto.json").is_file():
        out.pareto = _pareto(results / "pareto.json")
    else:
        out.absent.append("Pareto study (results/pareto.json)")
    if (results / "geneval_failures.jsonl").is_file():
        out.failures = _failures(results / "geneval_failures.jsonl", root, missing)
    else:
        out.absent.append("GenEval failure examples (results/geneval_failures.jsonl)")
    if (results / "data_correlations.csv").is_file():  # no note when absent: real data has no world to correlate with
        out.data_correlations = _csv(results / "data_correlations.csv", CORRELATION_COLUMNS)
    if (results / "shape_confusion.csv").is_file():  # no note when absent: only GenEval on one-class prompts has it
        out.shape_confusion = _csv(results / "shape_confusion.csv", CONFUSION_COLUMNS)
    out.grids = _grids(results / "grids", arms)
    if not out.grids:
        out.absent.append("sample grids (results/grids/<arm>.png)")
    elif len(out.grids) < len(arms):
        missing.append("no sample grid for " + ", ".join(a for a in arms if a not in out.grids))
    return out
