"""A sweep becomes units of work: one data unit, a training unit per (arm, seed), an evaluation unit per
(arm, seed, evaluated step). Each unit's key hashes everything that decides its result: the resolved
config (minus its display name), the data it reads, the evaluation settings, and the source code of the
packages that compute it, so a finished unit is reused by any sweep that needs it and redone after the
code that made it changes.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from ablations.arms import Sweep
from harness.evaluation.generate import MAX_SAMPLES
from harness.store import Store
from harness.units import Unit
from miro.config import RunConfig, to_dict
from miro.errors import MiroError, check_range
from miro.sample import default_branches

REPO = Path(__file__).resolve().parent.parent


# the code that decides each kind of unit's result (orchestration code is left out on purpose)
METHOD_CODE = ("miro",)
EVALUATION_CODE = ("miro", "harness/evaluation", "harness/geneval", "harness/stats", "harness/prompts.py", "harness/tune.py")


@cache
def source_hash(*paths: str) -> str:
    """A hash of every .py file under the given repository paths (folders or files)."""
    digest = hashlib.sha256()
    for name in paths:
        root = REPO / name
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            digest.update(str(path.relative_to(REPO)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class EvalSettings:
    """How every checkpoint of a sweep is evaluated (guidance defaults: each arm's own sample config)."""

    prompts: str = "shapes-test"  # the held-out half; tuning uses shapes-validation
    samples_per_prompt: int = 4
    seed: int = 0
    reference_size: int = 1000
    tune_trials: int = 12
    control_values: tuple[float, ...] = (0.0, 0.5, 1.0)
    control_samples_per_prompt: int = 2

    def __post_init__(self) -> None:
        for name, low in (("samples_per_prompt", 1), ("tune_trials", 1), ("control_samples_per_prompt", 1),
                          ("reference_size", 2), ("seed", 0)):
            check_range(f"--{name.replace('_', '-')}", getattr(self, name), low, MAX_SAMPLES - 1 if "samples" in name else None)
        for value in self.control_values:
            check_range("control target", value, 0.0, 1.0)


@dataclass(frozen=True)
class PlannedUnit:
    unit: Unit
    fn: str
    label: str
    arm: str | None = None
    seed: int | None = None
    step: int | None = None


@dataclass(frozen=True)
class Plan:
    sweep: Sweep
    data: list[PlannedUnit] = field(default_factory=list)
    train: list[PlannedUnit] = field(default_factory=list)
    evaluate: list[PlannedUnit] = field(default_factory=list)
    tune: list[PlannedUnit] = field(default_factory=list)
    control: list[PlannedUnit] = field(default_factory=list)

    @property
    def waves(self) -> list[tuple[str, list[PlannedUnit]]]:
        """Units in dependency order: every unit of a wave needs only units of earlier waves. Tuning comes
        before evaluation so that, with few slots, the one long study overlaps the many short evaluations."""
        return [("data", self.data), ("train", self.train), ("tune", self.tune), ("control", self.control),
                ("evaluate", self.evaluate)]


def seeded(config: RunConfig, arm: str, seed: int) -> RunConfig:
    return replace(config, name=f"{arm}-s{seed}", seed=seed)


def check_eval_steps(sweep: Sweep) -> None:
    for arm in sweep.arms:
        cfg = arm.config
        bad = [s for s in sweep.eval_steps if s > cfg.optim.steps or (s % cfg.checkpoint_every and s != cfg.optim.steps)]
        if bad:
            raise MiroError(f"sweep {sweep.name}: arm {arm.name} writes no checkpoint at steps {bad} (checkpoint_every = {cfg.checkpoint_every}, steps = {cfg.optim.steps}); use multiples of checkpoint_every")


def plan_sweep(sweep: Sweep, store: Store, settings: EvalSettings, threads: int = 1) -> Plan:
    """Register every unit of `sweep` in `store` (idempotent) and return them in waves."""
    check_eval_steps(sweep)
    plan = Plan(sweep)
    data_units: dict[str, PlannedUnit] = {}
    method = source_hash(*METHOD_CODE)
    evaluation = source_hash(*EVALUATION_CODE)
    for arm in sweep.arms:
        data_inputs = {"data": to_dict(arm.config.data), "code": method}
        data_key = store.register("data", data_inputs)
        if data_key not in data_units:
            data_units[data_key] = PlannedUnit(Unit("data", data_key, {"data": to_dict(arm.config.data)}),
                                               "harness.tasks:prepare_data", f"data {arm.config.data.source}")
            plan.data.append(data_units[data_key])
        for seed in sweep.seeds:
            cfg = seeded(arm.config, arm.name, seed)
            identity = to_dict(replace(cfg, name=""))
            train_key = store.register("train", {"config": identity, "data": data_key, "code": method})
            params = {"config": to_dict(cfg), "data_root": str(store.work_dir(data_key)), "threads": threads}
            plan.train.append(PlannedUnit(Unit("train", train_key, params, depends_on=(data_key,)),
                                          "harness.tasks:train_arm", f"train {arm.name} seed {seed}", arm.name, seed))
            sample = to_dict(resolved_sample(cfg))
            for step in sweep.eval_steps:
                checkpoint = store.work_dir(train_key) / "run" / "checkpoints" / f"step-{step:07d}"
                eval_params: dict[str, Any] = {"checkpoint": str(checkpoint), "sample": sample, "prompts": settings.prompts,
                                               "samples_per_prompt": settings.samples_per_prompt, "seed": settings.seed,
                                               "reference_size": settings.reference_size, "threads": threads}
                eval_key = store.register("evaluate", {"train": train_key, "step": step, "sample": sample,
                                                       "settings": to_dict(settings), "code": evaluation})
                plan.evaluate.append(PlannedUnit(Unit("evaluate", eval_key, eval_params, depends_on=(train_key,)),
                                                 "harness.tasks:evaluate_checkpoint", f"evaluate {arm.name} seed {seed} step {step}",
                                                 arm.name, seed, step))
            if arm.name == sweep.tune_arm and seed == sweep.seeds[0]:
                plan.tune.append(tune_unit(store, arm.name, seed, train_key, max(sweep.eval_steps), settings, evaluation, threads))
                plan.control.append(control_unit(store, arm.name, seed, train_key, max(sweep.eval_steps), sample, settings,
                                                 evaluation, threads))
    return plan


def control_unit(store: Store, arm: str, seed: int, train_key: str, step: int, sample: dict[str, Any],
                 settings: EvalSettings, code: str, threads: int) -> PlannedUnit:
    """Measured rewards against requested targets, one training reward at a time, at the last checkpoint."""
    checkpoint = store.work_dir(train_key) / "run" / "checkpoints" / f"step-{step:07d}"
    params = {"checkpoint": str(checkpoint), "sample": sample, "prompts": settings.prompts,
              "samples_per_prompt": settings.control_samples_per_prompt, "seed": settings.seed,
              "values": list(settings.control_values), "threads": threads}
    key = store.register("control", {"train": train_key, "step": step, "sample": sample, "prompts": settings.prompts,
                                     "samples_per_prompt": settings.control_samples_per_prompt, "seed": settings.seed,
                                     "values": list(settings.control_values), "code": code})
    return PlannedUnit(Unit("control", key, params, depends_on=(train_key,)), "harness.tasks:control_targets",
                       f"control {arm} seed {seed} step {step}", arm, seed, step)


def tune_unit(store: Store, arm: str, seed: int, train_key: str, step: int, settings: EvalSettings, code: str,
              threads: int) -> PlannedUnit:
    """An Optuna study of the arm's inference knobs at its last evaluated checkpoint (validation prompts)."""
    checkpoint = store.work_dir(train_key) / "run" / "checkpoints" / f"step-{step:07d}"
    params = {"checkpoint": str(checkpoint), "trials": settings.tune_trials, "threads": threads}
    key = store.register("tune", {"train": train_key, "step": step, "trials": settings.tune_trials, "code": code})
    return PlannedUnit(Unit("tune", key, params, depends_on=(train_key,)), "harness.tasks:tune_checkpoint",
                       f"tune {arm} seed {seed} step {step}", arm, seed, step)


def resolved_sample(cfg: RunConfig) -> Any:
    """The arm's sampler with its guidance targets written out (MIRO's defaults when none are given)."""
    positive, negative = default_branches(cfg.sample, cfg.rewards.conditioned)
    return replace(cfg.sample, positive_targets=dict(positive.targets), negative_targets=dict(negative.targets))
