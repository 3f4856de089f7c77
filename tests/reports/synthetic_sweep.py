"""A stored sweep with planted effects, written in the report's input contract (reports.results).

It uses the real `default` sweep's arms (configs, declared ablations, config diffs), so the report is
built from what the runner will write; the numbers are drawn from a model with planted effects:
rewarding quality raises quality a lot and early, rewarding size costs GenEval, alignment changes little.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from ablations.sweeps import default
from harness.study import config_diff
from miro.config import to_dict
from miro.conventions import GUIDANCE_CONVENTION, TIME_CONVENTION
from miro.data.shapes_prompts import TWO_CLASS_TAGS

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PARTIAL_ARM = "only-size"  # the arm the shared test sweep stops before its last step
STEPS = (100, 250, 500)  # every arm at every step; the planted curves are shaped for these
FIRST_STEP, *_, PREVIOUS_STEP, LAST_STEP = STEPS
TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
HELD_OUT_SCORER = "shapes_cleanliness"


def planted_effect(rewards: Sequence[str], metric: str) -> float:
    """Final-step shift of `metric` for an arm trained on `rewards`."""
    effect = {"shapes_quality": 0.30 * ("shapes_quality" in rewards), "shapes_size": 0.25 * ("shapes_size" in rewards),
              "shapes_alignment": 0.01 * ("shapes_alignment" in rewards),
              "geneval": -0.12 * ("shapes_size" in rewards), "geneval_shape_agnostic": -0.1 * ("shapes_size" in rewards),
              HELD_OUT_SCORER: -0.05 * ("shapes_size" in rewards)}
    return effect.get(metric, 0.0)


BASE = {"shapes_quality": 0.45, "shapes_size": 0.15, "shapes_alignment": 0.5, HELD_OUT_SCORER: 0.6,
        "geneval": 0.35, "geneval_shape_agnostic": 0.6, "geneval_shape_read": 0.4}
ONE_CLASS_METRICS = ("geneval_shape_read",)  # judged on prompts naming one class only, as harness.geneval.shape_read


def progress(step: int, last: int, rewarded: bool) -> float:
    """Share of the final value reached at `step`: rewarded arms converge faster."""
    rate = 6.0 if rewarded else 2.5
    return (1 - np.exp(-rate * step / last)) / (1 - np.exp(-rate))


def metric_rows(arms: list[tuple[str, tuple[str, ...]]], seeds: Sequence[int], steps: Sequence[int], prompts: int,
                samples: int, rng: np.random.Generator) -> pd.DataFrame:
    tags = np.array([TAGS[p % len(TAGS)] for p in range(prompts)])
    one_class = ~np.isin(np.repeat(tags, samples), TWO_CLASS_TAGS)
    # the one-class metrics draw from a stream of their own, so adding one leaves every other number as it was
    streams = {m: np.random.default_rng([7, i]) if m in ONE_CLASS_METRICS else rng for i, m in enumerate(BASE)}
    difficulty = {m: streams[m].normal(0, 0.08, prompts) for m in BASE}
    frames = []
    for arm, rewards in arms:
        for seed in seeds:
            for step in steps:
                for metric, base in BASE.items():
                    rewarded = planted_effect(rewards, metric) != 0
                    level = (base + planted_effect(rewards, metric)) * progress(step, steps[-1], rewarded)
                    draw = streams[metric]
                    mean = np.clip(level + difficulty[metric] + draw.normal(0, 0.01), 0.01, 0.99)
                    per_image = np.repeat(mean, samples)
                    if metric.startswith("geneval"):
                        value = (draw.random(per_image.size) < per_image).astype(float)
                    else:
                        value = per_image + draw.normal(0, 0.05, per_image.size)
                    rows = pd.DataFrame({"arm": arm, "seed": seed, "step": step,
                                         "prompt_id": np.repeat(np.arange(prompts), samples),
                                         "tag": np.repeat(tags, samples), "sample": np.tile(np.arange(samples), prompts),
                                         "metric": metric, "value": value})
                    frames.append(rows[one_class] if metric in ONE_CLASS_METRICS else rows)
                single = np.flatnonzero(tags == "single_object")
                objects = 1 + rng.poisson(0.2 + 0.4 * ("shapes_size" in rewards), single.size * samples)
                frames.append(pd.DataFrame({"arm": arm, "seed": seed, "step": step, "prompt_id": np.repeat(single, samples),
                                            "tag": "single_object", "sample": np.tile(np.arange(samples), single.size),
                                            "metric": "objects_per_single_object_prompt", "value": objects.astype(float)}))
    return pd.concat(frames, ignore_index=True)


def optional_tables(arms: list[tuple[str, tuple[str, ...]]], seeds: Sequence[int], step: int,
                    rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    diversity = pd.DataFrame([{"arm": a, "seed": s, "step": step, "metric": m, "value": v, "low": v - 0.02, "high": v + 0.02}
                              for a, r in arms for s in seeds
                              for m, v in (("pairwise_distance", 0.4 - 0.1 * ("shapes_quality" in r) + rng.normal(0, 0.01)),
                                           ("fid", 30 + 10 * len(r) + rng.normal(0, 1)))])
    control = pd.DataFrame([{"arm": a, "seed": s, "step": step, "reward": rw, "target": t, "prompt_id": p, "metric": rw,
                             "value": 0.2 + 0.6 * t * (rw in r) + rng.normal(0, 0.05)}
                            for a, r in arms if r for s in seeds for rw in ("shapes_quality", "shapes_size") if rw in r
                            for t in (0.0, 0.25, 0.5, 0.75, 1.0) for p in range(12)])
    best = pd.DataFrame([{"arm": a, "seed": s, "step": step, "selector": "shapes_quality", "n": n, "metric": m,
                          "value": BASE[m] + planted_effect(r, m) + 0.03 * np.log2(n) * (m == "shapes_quality")}
                         for a, r in arms[:2] for s in seeds for n in (1, 2, 4, 8) for m in ("shapes_quality", "geneval")])
    return {"diversity": diversity, "controllability": control, "best_of_n": best}


def write_png(path: Path, rng: np.random.Generator, shape: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, rng.random((*shape, 3)))


def write_synthetic_sweep(root: Path, *, prompts: int = 36, samples: int = 2, seeds: Sequence[int] = (0, 1),
                          drop_arms: Sequence[str] = (), optional: bool = True, seed: int = 0, keep_arms: Sequence[str] = ()) -> Path:
    """Write the default sweep's arms (or only `keep_arms`) with planted effects under `root`; `drop_arms` lose their
    last step."""
    rng = np.random.default_rng(seed)
    sweep = default()
    if keep_arms:
        sweep = replace(sweep, arms=tuple(a for a in sweep.arms if a.name in keep_arms))
    steps = list(STEPS)
    arms = [(a.name, a.config.rewards.conditioned) for a in sweep.arms]
    spec = {
        "name": sweep.name, "description": sweep.description, "seeds": list(seeds), "eval_steps": steps,
        "arms": [{"name": a.name, "baseline": a.baseline, "ablates": list(a.ablates),
                  "diff": {k: list(v) for k, v in config_diff(sweep.arm(a.baseline).config, a.config).items()} if a.baseline else {},
                  "training_rewards": list(a.config.rewards.conditioned), "config": to_dict(a.config)} for a in sweep.arms],
        "manifest": {"git": {"sha": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
                     "packages": {"torch": "2.14.1", "numpy": "2.0"}, "device": "cpu:x86_64 x2 threads=1",
                     "conventions": {"time": TIME_CONVENTION, "guidance": GUIDANCE_CONVENTION},
                     "scorer_fingerprints": {m: f"{m}-v1-abc123" for m in BASE if not m.startswith("geneval")}},
        "compute": {"train_seconds": {a: 210.0 + i for i, (a, _) in enumerate(arms)}, "samples": prompts * samples * len(seeds)},
        "expected_units": len(arms) * len(seeds) * (1 + len(steps)),
        "finished_units": len(arms) * len(seeds) * (1 + len(steps)) - len(drop_arms) * len(seeds),
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "sweep.json").write_text(json.dumps(spec, indent=1))
    results = root / "results"
    results.mkdir(exist_ok=True)
    metrics = metric_rows(arms, seeds, steps, prompts, samples, rng)
    metrics = metrics[~(metrics["arm"].isin(drop_arms) & (metrics["step"] == steps[-1]))]
    metrics.to_parquet(results / "metrics.parquet", index=False)
    if not optional:
        return root
    for name, table in optional_tables(arms, seeds, steps[-1], rng).items():
        table.to_parquet(results / f"{name}.parquet", index=False)
    trials = [{"params": {"guidance_scale": g, "quality_target": q}, "values": [0.3 - 0.1 * q + rng.normal(0, 0.02), 0.4 + 0.4 * q]}
              for g, q in zip(rng.uniform(1, 6, 16), rng.uniform(0, 1, 16))]
    front = [not any(u["values"][0] >= t["values"][0] and u["values"][1] >= t["values"][1] and u is not t for u in trials)
             for t in trials]
    (results / "pareto.json").write_text(json.dumps({"arm": "miro", "objectives": ["geneval", "shapes_quality"],
                                                     "trials": [{**t, "pareto": f} for t, f in zip(trials, front)]}))
    failures = []
    for i, (arm, _) in enumerate(arms[:3]):
        image = f"results/failures/{arm}-{i}.png"
        write_png(root / image, rng, (32, 32))
        failures.append({"arm": arm, "seed": 0, "step": steps[-1], "prompt": "a photo of two red circles", "tag": "counting",
                         "reason": "expected 2 circle, found 3", "image": image})
    factors = ("blur_sigma", "noise_std", "cut", "caption_wrong")
    planted = {("shapes_quality", "blur_sigma"): -0.6, ("shapes_alignment", "caption_wrong"): -0.8}
    pd.DataFrame([{"data": "shapes-0123456789ab", "reward": r, "factor": f, "n_samples": 256,
                   "pearson": float("nan") if f == "cut" else planted.get((r, f), rng.normal(0, 0.05))}
                  for r in BASE if not r.startswith("geneval") for f in factors]).to_csv(results / "data_correlations.csv", index=False)
    (results / "geneval_failures.jsonl").write_text("".join(json.dumps(f) + "\n" for f in failures))
    # planted reads on one-class prompts: the baseline draws everything as a circle or nothing, MIRO reads right
    reads = {"baseline": {"circle": ("circle", "nothing"), "square": ("circle", "nothing"), "triangle": ("circle", "nothing")},
             "miro": {"circle": ("circle", "circle"), "square": ("square", "nothing"), "triangle": ("triangle", "triangle")}}
    pd.DataFrame([{"arm": arm, "seed": seed, "step": step, "prompted": prompted, "read": read, "images": 3}
                  for arm, table in reads.items() for seed in seeds for step in (steps[0], steps[-1])
                  for prompted, drawn in table.items() for read in drawn]).groupby(
        ["arm", "seed", "step", "prompted", "read"], as_index=False)["images"].sum().to_csv(results / "shape_confusion.csv", index=False)
    for arm, _ in arms:
        write_png(results / "grids" / f"{arm}.png", rng, (128, 128))
    return root
