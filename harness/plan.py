"""A study becomes units of work, stage by stage: the data plugin's units (annotation shards, assembly and
binning, precompute shards; or the shapes world's one unit), a training unit per (arm, seed), per evaluated checkpoint and suite an
evaluation (its generation sharded as an array when the suite asks), and for the tuned arm a tuning and a
controllability unit.

Each unit's key hashes exactly what decides its result: its own inputs, the content of the files it reads
(harness.identity: weights, data, prompt and benchmark files, an evaluate-only arm's checkpoint), the keys of the
units it reads, and the source code of the packages that compute it (orchestration code is left out on purpose). An evaluation hashes its
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
from harness.identity import PROMPT_PATHS, SUITE_PATHS, Identities, by_content, option_fields
from harness.store import Store
from harness.study import Arm, Study, Suite
from harness.tasks import run_dir
from harness.units import PlannedUnit, Unit
from miro.checkpoint import checkpoint_path
from miro.config import PATH_FIELDS, RunConfig, to_dict
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

    source: str  # the training unit's key; "" for an evaluate-only arm, whose checkpoints are read by content
    depends_on: tuple[str, ...]
    run: Path

    def checkpoint(self, step: int) -> Path:
        return checkpoint_path(self.run, step)

    def identity(self, step: int) -> tuple[dict[str, str], list[str]]:
        """What a unit reading its checkpoint of `step` puts in its key as "train", and the fields that are paths."""
        return ({"train": self.source}, []) if self.source else ({"train": str(self.checkpoint(step))}, ["train"])


class Planner:
    """Registers the units of one study in a store (idempotently) and collects them by stage."""

    def __init__(self, study: Study, store: Store, threads: int) -> None:
        self.study, self.store, self.threads, self.plan = study, store, threads, Plan(study)
        self.method, self.eval_code = source_hash(*METHOD_CODE), source_hash(*EVALUATION_CODE)
        self.identify = Identities(store)
        self.seen: set[str] = set()

    def register(self, kind: str, inputs: dict[str, Any], paths: list[str], trained: Trained | None = None, step: int = 0) -> str:
        """Register a unit whose dotted input fields `paths` may name files (and, given `trained`, that reads its
        checkpoint of `step`), keyed by the content of what they name."""
        if trained is not None:
            source, more = trained.identity(step)
            inputs, paths = {**source, **inputs}, [*paths, *more]
        keyed, reads = by_content(inputs, paths, self.identify)
        return self.store.register(kind, keyed, reads)

    def add(self, stage: list[PlannedUnit], planned: PlannedUnit) -> PlannedUnit:
        """Append a unit to its stage once (arms and seeds may share units), with its kind's resources."""
        if planned.unit.key not in self.seen:
            self.seen.add(planned.unit.key)
            resources = self.study.resources_of(planned.unit.kind, planned.group)
            stage.append(replace(planned, unit=replace(planned.unit, resources=resources)))
        return planned

    def trained(self, arm: Arm, seed: int) -> Trained:
        if arm.evaluate_only:
            return Trained("", (), Path(arm.evaluate_only))
        prepared = plan_data(arm.config, self.study.data, self.store, self.method)
        for planned in prepared.units:
            self.add(self.plan.data, planned)
        cfg = seeded(arm.config, arm.name, seed)
        identity = training_identity(to_dict(replace(cfg, name="")))  # where its curves go is not what it trains
        key = self.register("train", {"config": identity, "data": list(prepared.ready), "code": self.method},
                            [f"config.{name}" for name in PATH_FIELDS])
        params = {"config": to_dict(replace(cfg, data=prepared.data)), "data_root": prepared.data_root, "threads": self.threads}
        self.add(self.plan.train, PlannedUnit(Unit("train", key, params, depends_on=prepared.ready), f"train {arm.name} seed {seed}", arm.name, seed))
        return Trained(key, (key,), run_dir(self.store.work_dir(key)))

    def evaluation(self, arm: Arm, seed: int, trained: Trained, step: int, suite: Suite, sample: dict[str, Any]) -> None:
        label = f"{suite.name} {arm.name} seed {seed} step {step}"
        checkpoint = str(trained.checkpoint(step))
        key = self.register("evaluate", {"step": step, "sample": sample, "suite": suite_identity(suite), "code": self.eval_code},
                            ["sample.negative_bank", *(f"suite.{name}" for name in SUITE_PATHS),
                             *option_fields("suite.scorer_options", suite.scorer_options)], trained, step)
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
            key = self.register("tune", {"step": step, "tuning": tuning, "code": self.eval_code},
                                [*(f"tuning.{name}" for name in PROMPT_PATHS), *option_fields("tuning.scorer_options", tuning["scorer_options"])],
                                trained, step)
            self.add(self.plan.tune, PlannedUnit(Unit("tune", key, {"checkpoint": checkpoint, "tuning": tuning, "threads": self.threads},
                                                      depends_on=trained.depends_on), f"tune {arm.name} seed {seed} step {step}",
                                                 arm.name, seed, step))
        if study.control is not None:
            control = to_dict(study.control)
            key = self.register("control", {"step": step, "sample": sample, "control": control, "code": self.eval_code},
                                ["sample.negative_bank", *(f"control.{name}" for name in PROMPT_PATHS),
                                 *option_fields("control.scorer_options", control["scorer_options"])], trained, step)
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
