"""A study: arms x seeds, the checkpoints to evaluate, the data stages, the evaluation suites, the tuning, the
controllability sweep and the resources of every unit kind, as typed frozen dataclasses.

A study is written in Python by its owner (a file outside the project, or one of `ablations/`), each arm a
`dataclasses.replace` of a preset that declares the fields it ablates. `problems` lists every mistake of a study
at once (unknown scorer, missing path, arm that differs from its baseline by accident, checkpoint never
written), so a study is refused before a single unit is planned.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from miro.config import RunConfig, to_dict
from miro.errors import MiroError, unknown_name_error

# fields that identify a run rather than define it: never counted as a difference
IDENTITY_FIELDS = ("name",)
# a study's, an arm's or a suite's name: each becomes a folder or a file name of the store and the report
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


@dataclass(frozen=True)
class Arm:
    """One arm. `evaluate_only` names an existing run folder (e.g. an imported released checkpoint): the arm is
    then evaluated at its checkpoints and never trained. `eval_steps`: some of the study's evaluated steps, its
    last included (empty: all of them), for an arm no training curve needs (a specialist is judged at the end);
    `seeds`: some of the study's seeds, its first included (empty: all of them), for an arm whose comparisons
    need fewer (comparisons pair the seeds both arms have)."""

    name: str
    config: RunConfig
    ablates: tuple[str, ...] = ()
    baseline: str | None = None  # the arm it is compared against; None for a study's reference arm
    evaluate_only: str = ""
    eval_steps: tuple[int, ...] = ()
    seeds: tuple[int, ...] = ()


@dataclass(frozen=True)
class DataStages:
    """How a study's data is prepared before training (the shapes world renders and annotates itself).

    annotate: scorers that score every training image (empty: use `data.annotations` as given);
    scorer_options: scorer -> factory keyword options (the weights file's are merged under them);
    groups: group name -> some of the scorers, annotated as their own array with the resources of
    "annotate:<group>" in the study's resources (VQAScore's 11B model wants other GPUs than the CLIP scorers);
    the scorers in no group form the group "default";
    annotate_shards / precompute_shards: array tasks; precompute: cache VAE latents and T5 features;
    max_failed: the fraction of a shard's samples that may be unusable (unreadable, a scorer error or NaN) before its
    unit fails, once the shard is written (not part of the units' keys: raising it and running `--retry` rescores
    nothing)."""

    annotate: tuple[str, ...] = ()
    scorer_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    annotate_shards: int = 1
    precompute: bool = False
    precompute_shards: int = 1
    max_failed: float = 0.01


@dataclass(frozen=True)
class Suite:
    """One evaluation suite, run on every evaluated checkpoint: a prompt set and what judges it.

    scorers None: the data plugin's default scorers (the shapes world: its analytic rewards); geneval_detector:
    a Mask2Former folder (the shapes world uses its analytic detector); geneval_colors: open_clip weights of the
    colour classifier, geneval_colors_model its open_clip architecture (or config .json); geneval_threshold,
    geneval_counting_threshold, geneval_max_objects, geneval_max_overlap: GenEval's rules (harness.geneval.rules,
    the reference tool's defaults); reference: FID/KID reference ("shapes", an image folder, or "" for none); shards: generation
    array tasks (the scoring, GenEval and summary then run once over all of them)."""

    name: str
    prompts: str
    samples_per_prompt: int = 4
    limit: int = 0
    scorers: tuple[str, ...] | None = None
    scorer_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    geneval: bool = True
    geneval_detector: str = ""
    geneval_classes: str = ""
    geneval_colors: str = "openai"
    geneval_colors_model: str = "ViT-L-14"
    geneval_threshold: float = 0.3
    geneval_counting_threshold: float = 0.9
    geneval_max_objects: int = 16
    geneval_max_overlap: float = 1.0
    features: str = "pixels"
    reference: str = ""
    reference_size: int = 1000
    seed: int = 0
    shards: int = 1


@dataclass(frozen=True)
class Tuning:
    """An Optuna study of the tuned arm's guidance scale, reward targets and sampler steps (chosen among `steps`),
    on validation prompts. `objectives` are metric names of an evaluation summary, scored by `scorers` (None: the
    data plugin's default scorers, the shapes world's analytic rewards)."""

    prompts: str
    objectives: tuple[str, ...]
    trials: int = 12
    steps: tuple[int, ...] = (10, 25)
    samples_per_prompt: int = 2
    seed: int = 0
    scorers: tuple[str, ...] | None = None
    scorer_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Control:
    """Controllability: each training reward's positive target swept over `values`, at the tuned arm's last checkpoint."""

    prompts: str
    values: tuple[float, ...] = (0.0, 0.5, 1.0)
    samples_per_prompt: int = 2
    seed: int = 0
    scorers: tuple[str, ...] | None = None  # None: the data plugin's default scorers
    scorer_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Study:
    """Arms x seeds evaluated at `eval_steps` on every suite; `tune_arm` (first seed, last step) is also tuned and
    swept for controllability. `resources` maps a unit kind to SlurmResources fields (e.g. {"train":
    {"gpus_per_node": 8, "tasks_per_node": 8}}) over the command line's cluster defaults. `weights` is the weights
    file (TOML) every unit reads its local model paths from."""

    name: str
    arms: tuple[Arm, ...]
    seeds: tuple[int, ...] = (0,)
    eval_steps: tuple[int, ...] = ()
    description: str = ""
    tune_arm: str = ""
    evaluation: tuple[Suite, ...] = ()
    tuning: Tuning | None = None
    control: Control | None = None
    data: DataStages = DataStages()
    resources: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    weights: str = ""

    def resources_of(self, kind: str, group: str | None = None) -> dict[str, Any]:
        """The resources of a unit kind, with those of its group ("annotate:vqa") on top."""
        return {**self.resources.get(kind, {}), **(self.resources.get(f"{kind}:{group}", {}) if group else {})}

    def steps_of(self, arm: Arm) -> tuple[int, ...]:
        """The steps at which `arm` is evaluated."""
        return arm.eval_steps or self.eval_steps

    def seeds_of(self, arm: Arm) -> tuple[int, ...]:
        """The seeds `arm` is trained with."""
        return arm.seeds or self.seeds

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise unknown_name_error("arm", name, [a.name for a in self.arms])


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is tuple:
        return f"a tuple of {_describe(args[0])}" if args else "a tuple"
    if origin in (Mapping, dict):
        return "a mapping"
    return "None" if hint is type(None) else getattr(hint, "__name__", str(hint))


def _fits(value: Any, hint: Any, where: str) -> list[str]:
    """Where `value` does not have the type `hint` (itself, an element, or a field of a nested dataclass)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return []
    wrong = [f"{where} = {value!r:.60} ({type(value).__name__}) must be {_describe(hint)}"]
    if origin in (typing.Union, types.UnionType):
        found = [_fits(value, option, where) for option in args]
        return [] if [] in found else next((f for f in found if f and not f[0].startswith(f"{where} = ")), wrong)
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return wrong
        return [p for i, item in enumerate(value) for p in _fits(item, args[0], f"{where}[{i}]")] if args else []
    if origin in (Mapping, dict):
        if not isinstance(value, Mapping):
            return wrong
        return [p for k, item in value.items() for p in _fits(item, args[1], f"{where}.{k}")] if len(args) == 2 else []
    if dataclasses.is_dataclass(hint):
        return type_problems(value, where) if isinstance(value, hint) else wrong  # type: ignore[arg-type]
    if hint is type(None):
        return [] if value is None else wrong
    if isinstance(value, bool) and hint is not bool or not isinstance(value, (int, float) if hint is float else hint):
        return wrong
    return []


def type_problems(value: Any, where: str) -> list[str]:
    """Every field of a study (a dataclass, nested ones included: arms, suites, run configs) whose value has the
    wrong type, so `Study(name=5, arms="x")` is named at once rather than met as an AttributeError later."""
    hints = typing.get_type_hints(type(value))
    return [p for f in dataclasses.fields(value) for p in _fits(getattr(value, f.name), hints[f.name], f"{where}.{f.name}")]


def flatten(data: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    flat: dict[str, object] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def config_diff(baseline: RunConfig, arm: RunConfig) -> dict[str, tuple[object, object]]:
    """Every resolved field that differs: path -> (baseline value, arm value)."""
    a, b = flatten(to_dict(baseline)), flatten(to_dict(arm))
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and k not in IDENTITY_FIELDS}


def undeclared_differences(arm: Arm, baseline: Arm) -> list[str]:
    """Differences from the baseline that the arm did not declare (a declared section covers its fields)."""
    return [path for path in config_diff(baseline.config, arm.config)
            if not any(path == d or path.startswith(d + ".") for d in arm.ablates)]


def arm_problems(study: Study) -> list[str]:
    """Duplicate arm names, unknown baselines, undeclared differences and checkpoints an arm never writes."""
    problems = [f"{what} {name!r} cannot name a folder (it would leave the store or be hidden); use letters, digits and . _ + -"
                for what, name in (("study name", study.name), *(("arm name", a.name) for a in study.arms),
                                   *(("suite name", suite.name) for suite in study.evaluation))
                if not SAFE_NAME.fullmatch(name)]
    names = [a.name for a in study.arms]
    if not names:
        problems.append(f"study {study.name} has no arms; add at least one Arm")
    if len(set(names)) != len(names):
        problems.append(f"study {study.name} has duplicate arm names {sorted({n for n in names if names.count(n) > 1})}; rename the arms")
    for wanted, what in ((study.tune_arm, "tune_arm"), *((a.baseline, f"arm {a.name}'s baseline") for a in study.arms)):
        if wanted and wanted not in names:
            problems.append(f"{what} {unknown_name_error('arm', wanted, names)}")
    for arm in study.arms:
        if arm.baseline in names:
            extra = undeclared_differences(arm, study.arm(arm.baseline))  # type: ignore[arg-type]  # checked just above
            if extra:
                problems.append(f"arm {arm.name} differs from its baseline {arm.baseline} in undeclared fields {extra}; "
                                "add them to the arm's `ablates` or make the configs equal")
        cfg = arm.config
        bad = [s for s in study.eval_steps if s > cfg.optim.steps or (s % cfg.checkpoint_every and s != cfg.optim.steps)]
        if bad and not arm.evaluate_only:
            problems.append(f"arm {arm.name} writes no checkpoint at steps {bad} (checkpoint_every = {cfg.checkpoint_every}, "
                            f"steps = {cfg.optim.steps}); use multiples of checkpoint_every")
        if arm.eval_steps and (not set(arm.eval_steps) <= set(study.eval_steps) or max(study.eval_steps, default=0) not in arm.eval_steps):
            problems.append(f"arm {arm.name}'s eval_steps {list(arm.eval_steps)} must be some of the study's {list(study.eval_steps)}, "
                            "its last included; pick them from the study's")
        if arm.seeds and (not set(arm.seeds) <= set(study.seeds) or study.seeds[:1] != arm.seeds[:1]):
            problems.append(f"arm {arm.name}'s seeds {list(arm.seeds)} must be some of the study's {list(study.seeds)}, "
                            "its first included; pick them from the study's")
    if not study.seeds or not study.eval_steps:
        problems.append(f"study {study.name} needs at least one seed and one evaluated step (seeds = {study.seeds}, eval_steps = {study.eval_steps})")
    for what, values in (("seeds", study.seeds), ("eval_steps", study.eval_steps)):
        if len(set(values)) != len(values):
            problems.append(f"{what} {list(values)} repeat {sorted({v for v in values if list(values).count(v) > 1})}; list each once")
    trained = [a.name for a in study.arms if not a.evaluate_only]
    if trained and any(step < 1 for step in study.eval_steps) or any(step < 0 for step in study.eval_steps):
        problems.append(f"eval_steps {list(study.eval_steps)} must be >= 1 (training writes no checkpoint at "
                        "step 0; only an imported, evaluate-only run has one)")
    return problems


def validate_study(study: Study) -> None:
    """Refuse a study with a structural mistake (all of them listed); paths and scorers are checked by harness.checks."""
    problems = arm_problems(study)
    if problems:
        raise MiroError(f"study {study.name}: {problems[0]}" if len(problems) == 1 else
                        f"study {study.name} has {len(problems)} problems:\n  - " + "\n  - ".join(problems))
