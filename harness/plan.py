"""A study becomes units of work, stage by stage: the data plugin's units (annotation shards, assembly and
binning, precompute shards; or the shapes world's one unit), a training unit per (arm, seed), per evaluated checkpoint and suite an
evaluation (its generation sharded as an array when the suite asks), and for the tuned arm a tuning and a
controllability unit.

Each unit's key hashes exactly what decides its result: its own inputs, the keys of the units it reads, and the
source code of the packages that compute it (orchestration code is left out on purpose). An evaluation hashes its
suite but not the tuning, a tuning its trials but not the suites, so changing the trials recomputes no evaluation;
a finished unit is reused by any study that needs it and redone after the code that made it changes.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from harness.datasources import plan_data
from harness.store import Store
from harness.study import Arm, Study, Suite
from harness.tasks import run_dir
from harness.units import PlannedUnit, Unit
from miro.checkpoint import checkpoint_path
from miro.config import RunConfig, to_dict
from miro.run_log import training_identity
from miro.sample import guidance_branches

REPO = Path(__file__).resolve().parent.parent

METHOD_CODE = ("miro",)
EVALUATION_CODE = ("miro", "harness/evaluation", "harness/geneval", "harness/stats", "harness/prompts.py", "harness/tune.py")
# suite fields that do not change a result (how the work is split, what it is called)
SUITE_LAYOUT = ("name", "shards")


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
class Plan:
    """Every unit of a study, by stage."""

    study: Study
    data: list[PlannedUnit] = field(default_factory=list)
    train: list[PlannedUnit] = field(default_factory=list)
    generate: list[PlannedUnit] = field(default_factory=list)
    evaluate: list[PlannedUnit] = field(default_factory=list)
    tune: list[PlannedUnit] = field(default_factory=list)
    control: list[PlannedUnit] = field(default_factory=list)

    @property
    def waves(self) -> list[tuple[str, list[PlannedUnit]]]:
        """Units in dependency order: every unit of a wave needs only units of earlier waves. Tuning comes
        before evaluation so that, with few slots, the one long study overlaps the many short evaluations."""
        return [("data", self.data), ("train", self.train), ("tune", self.tune), ("control", self.control),
                ("generate", self.generate), ("evaluate", self.evaluate)]


def seeded(config: RunConfig, arm: str, seed: int) -> RunConfig:
    return replace(config, name=f"{arm}-s{seed}", seed=seed)


def resolved_sample(cfg: RunConfig) -> Any:
    """The arm's sampler with its guidance targets written out (MIRO's defaults when none are given)."""
    positive, negative = guidance_branches(cfg.sample, cfg.rewards.conditioned)
    return replace(cfg.sample, positive_targets=dict(positive.targets), negative_targets=dict(negative.targets))


def suite_identity(suite: Suite) -> dict[str, Any]:
    return {k: v for k, v in to_dict(suite).items() if k not in SUITE_LAYOUT}


@dataclass(frozen=True)
class Trained:
    """Where an arm x seed's checkpoints come from: its training unit, or an existing run folder (evaluate-only)."""

    source: str  # the training unit's key, or the run folder of an evaluate-only arm
    depends_on: tuple[str, ...]
    run: Path

    def checkpoint(self, step: int) -> Path:
        return checkpoint_path(self.run, step)


class Planner:
    """Registers the units of one study in a store (idempotently) and collects them by stage."""

    def __init__(self, study: Study, store: Store, threads: int) -> None:
        self.study, self.store, self.threads, self.plan = study, store, threads, Plan(study)
        self.method, self.eval_code = source_hash(*METHOD_CODE), source_hash(*EVALUATION_CODE)
        self.seen: set[str] = set()

    def add(self, stage: list[PlannedUnit], planned: PlannedUnit) -> PlannedUnit:
        """Append a unit to its stage once (arms and seeds may share units), with its kind's resources."""
        if planned.unit.key not in self.seen:
            self.seen.add(planned.unit.key)
            resources = self.study.resources_of(planned.unit.kind, planned.group)
            stage.append(replace(planned, unit=replace(planned.unit, resources=resources)))
        return planned

    def trained(self, arm: Arm, seed: int) -> Trained:
        if arm.evaluate_only:
            return Trained(str(Path(arm.evaluate_only).resolve()), (), Path(arm.evaluate_only))
        prepared = plan_data(arm.config, self.study.data, self.store, self.method)
        for planned in prepared.units:
            self.add(self.plan.data, planned)
        cfg = seeded(arm.config, arm.name, seed)
        identity = training_identity(to_dict(replace(cfg, name="")))  # where its curves go is not what it trains
        key = self.store.register("train", {"config": identity, "data": list(prepared.ready), "code": self.method})
        params = {"config": to_dict(replace(cfg, data=prepared.data)), "data_root": prepared.data_root, "threads": self.threads}
        self.add(self.plan.train, PlannedUnit(Unit("train", key, params, depends_on=prepared.ready), f"train {arm.name} seed {seed}", arm.name, seed))
        return Trained(key, (key,), run_dir(self.store.work_dir(key)))

    def evaluation(self, arm: Arm, seed: int, trained: Trained, step: int, suite: Suite, sample: dict[str, Any]) -> None:
        label = f"{suite.name} {arm.name} seed {seed} step {step}"
        checkpoint = str(trained.checkpoint(step))
        key = self.store.register("evaluate", {"train": trained.source, "step": step, "sample": sample,
                                               "suite": suite_identity(suite), "code": self.eval_code})
        shards = []
        for shard in range(suite.shards if suite.shards > 1 else 0):
            params = {"out": str(self.store.work_dir(key)), "checkpoint": checkpoint, "sample": sample, "suite": to_dict(suite),
                      "shard": shard, "shards": suite.shards, "threads": self.threads}
            shard_key = self.store.register("generate", {"evaluation": key, "shard": shard, "shards": suite.shards})
            shards.append(self.add(self.plan.generate, PlannedUnit(Unit("generate", shard_key, params, depends_on=trained.depends_on),
                                                                   f"generate {shard + 1}/{suite.shards} {label}", arm.name, seed, step)))
        params = {"checkpoint": checkpoint, "sample": sample, "suite": to_dict(suite), "threads": self.threads}
        depends = trained.depends_on + tuple(s.unit.key for s in shards)
        self.add(self.plan.evaluate, PlannedUnit(Unit("evaluate", key, params, depends_on=depends), f"evaluate {label}",
                                                 arm.name, seed, step, suite.name))

    def tuned(self, arm: Arm, seed: int, trained: Trained, sample: dict[str, Any]) -> None:
        """The tuning and controllability units of the study's tuned arm, at its last evaluated checkpoint."""
        step, study = max(self.study.eval_steps), self.study
        checkpoint = str(trained.checkpoint(step))
        if study.tuning is not None:
            tuning = to_dict(study.tuning)
            key = self.store.register("tune", {"train": trained.source, "step": step, "tuning": tuning, "code": self.eval_code})
            self.add(self.plan.tune, PlannedUnit(Unit("tune", key, {"checkpoint": checkpoint, "tuning": tuning, "threads": self.threads},
                                                      depends_on=trained.depends_on), f"tune {arm.name} seed {seed} step {step}",
                                                 arm.name, seed, step))
        if study.control is not None:
            control = to_dict(study.control)
            key = self.store.register("control", {"train": trained.source, "step": step, "sample": sample, "control": control,
                                                  "code": self.eval_code})
            params = {"checkpoint": checkpoint, "sample": sample, "control": control, "threads": self.threads}
            self.add(self.plan.control, PlannedUnit(Unit("control", key, params, depends_on=trained.depends_on),
                                                    f"control {arm.name} seed {seed} step {step}", arm.name, seed, step))


def plan_study(study: Study, store: Store, threads: int = 1) -> Plan:
    """Register every unit of a (validated) study in `store` and return them by stage."""
    planner = Planner(study, store, threads)
    for arm in study.arms:
        for seed in study.seeds_of(arm):
            trained = planner.trained(arm, seed)
            sample = to_dict(resolved_sample(seeded(arm.config, arm.name, seed)))
            for step in study.steps_of(arm):
                for suite in study.evaluation:
                    planner.evaluation(arm, seed, trained, step, suite, sample)
            if arm.name == study.tune_arm and seed == study.seeds[0]:
                planner.tuned(arm, seed, trained, sample)
    return planner.plan
