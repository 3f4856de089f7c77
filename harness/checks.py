"""Check a study before planning: every path, scorer name, prompt file, resource and weights-file entry, with all
problems listed at once, so one run of `--dry-run` says everything that needs fixing before any GPU is asked for.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from harness.executors import SlurmResources
from harness.prompts import NAMED_SETS, split_of
from harness.study import Study, Suite, arm_problems
from harness.tasks import evaluation_options
from harness.tune import TuneOptions
from harness.units import KINDS
from miro.config import SampleConfig, to_dict
from miro.errors import MiroError, did_you_mean
from miro.rewards.registry import scorer_names

REFERENCE_SETS = ("", "shapes")


def _path(what: str, path: str, problems: list[str]) -> None:
    if path and not Path(path).expanduser().exists():
        problems.append(f"{what} = {path} does not exist; fix the path (or the weights file entry that names it)")


def _scorers(what: str, names: tuple[str, ...], problems: list[str]) -> None:
    known = scorer_names()
    for name in names:
        if name not in known:
            problems.append(f'{what}: unknown scorer "{name}"{did_you_mean(name, known)}; registered: {", ".join(known)}')


def _options(what: str, options: Mapping[str, Mapping[str, Any]], problems: list[str]) -> None:
    """Scorer options that the scorer's factory does not take (they would fail inside a unit, after hours)."""
    from miro.weights_file import scorer_option_problem

    known = scorer_names()
    problems += [f"{what}: {problem}" for name, given in options.items() if name in known
                 if (problem := scorer_option_problem(name, given))]


def _prompts(what: str, prompts: str, problems: list[str]) -> None:
    """A named set, or a prompt file that reads and holds at least one prompt (either optionally with :validation or
    :test, harness.prompts.split_of)."""
    from harness.prompts import load_prompts

    prompts, split = split_of(prompts)
    if prompts not in NAMED_SETS:
        if not prompts.endswith((".tsv", ".jsonl")):
            problems.append(f'{what} = "{prompts}" is neither a set ({", ".join(NAMED_SETS)}) nor a .tsv or .jsonl file{did_you_mean(prompts, NAMED_SETS)}')
        elif not Path(prompts).expanduser().is_file():
            _path(what, prompts, problems)
        else:
            try:
                if not load_prompts(str(Path(prompts).expanduser()) + (f":{split}" if split else "")):
                    problems.append(f"{what} = {prompts} holds no prompt; write one prompt a row")
            except MiroError as err:
                problems.append(f"{what}: {err}")


def _readable(where: str, source: str, path: str) -> list[str]:
    """Whether the images can be listed (the shards' headers or the folder's names; no image is read)."""
    from harness.estimate import image_count

    try:
        image_count((source, path))
    except MiroError as err:
        return [f"{where}: data.path: {err}"]
    return []


def suite_problems(suite: Suite) -> list[str]:
    problems: list[str] = []
    where = f"evaluation.{suite.name}"
    _prompts(f"{where}.prompts", suite.prompts, problems)
    _scorers(f"{where}.scorers", suite.scorers or (), problems)
    _options(f"{where}.scorer_options", suite.scorer_options, problems)
    for name in suite.scorer_options:
        if suite.scorers is not None and name not in suite.scorers:
            problems.append(f'{where}.scorer_options names "{name}", which is not among its scorers; add it to scorers')
    _path(f"{where}.geneval_detector", suite.geneval_detector, problems)
    _path(f"{where}.geneval_classes", suite.geneval_classes, problems)
    try:  # the options its evaluation units will build, checked as they check them
        evaluation_options(to_dict(suite), to_dict(SampleConfig()))
    except MiroError as err:
        problems.append(f"{where}: {err}")
    if suite.reference not in REFERENCE_SETS:
        _path(f"{where}.reference", suite.reference, problems)
    if suite.samples_per_prompt < 1 or suite.shards < 1:
        problems.append(f"{where}: samples_per_prompt = {suite.samples_per_prompt} and shards = {suite.shards} must be >= 1")
    return problems


def study_problems(study: Study) -> list[str]:
    """Every problem of `study` (empty: it can be planned)."""
    problems = arm_problems(study)
    if not study.evaluation:
        problems.append(f"study {study.name} has no evaluation suite; add one (harness.study.Suite)")
    names = [s.name for s in study.evaluation]
    if len(set(names)) != len(names):
        problems.append(f"study {study.name} has two evaluation suites of one name ({names}); rename one")
    for suite in study.evaluation:
        problems += suite_problems(suite)
    stages = study.data
    _scorers("data.annotate", stages.annotate, problems)
    _options("data.scorer_options", stages.scorer_options, problems)
    if stages.annotate_shards < 1 or stages.precompute_shards < 1:
        problems.append("data.annotate_shards and data.precompute_shards must be >= 1")
    if not 0 <= stages.max_failed <= 1:
        problems.append(f"data.max_failed = {stages.max_failed} must lie in [0, 1] (a fraction of a shard's samples)")
    for arm in study.arms:
        cfg, where = arm.config, f"arm {arm.name}"
        if arm.evaluate_only:
            _path(f"{where}.evaluate_only", arm.evaluate_only, problems)
            continue
        if cfg.data.source != "shapes":
            _path(f"{where}: data.path", cfg.data.path, problems)
            if Path(cfg.data.path).expanduser().exists():
                problems += _readable(where, cfg.data.source, cfg.data.path)
            _path(f"{where}: data.annotations", cfg.data.annotations, problems)
            if not stages.annotate and not cfg.data.annotations:
                problems.append(f"{where} trains on {cfg.data.source} data with no annotation: list scorers in the study's "
                                "data.annotate, or set data.annotations to an annotated parquet file")
            missing = [r for r in cfg.rewards.names if stages.annotate and r not in stages.annotate]
            if missing:
                problems.append(f"{where} conditions on {missing}, which data.annotate does not score; add them to data.annotate")
            if stages.precompute and cfg.text.encoder != "t5" and cfg.latents.space != "vae":
                problems.append(f"{where}: data.precompute is set but the arm uses neither T5 (text.encoder) nor a VAE "
                                "(latents.space), so there is nothing to precompute; set data.precompute = False")
        _path(f"{where}: text.path", cfg.text.path, problems)
        _path(f"{where}: latents.vae_path", cfg.latents.vae_path, problems)
    if study.tuning is not None:
        _prompts("tuning.prompts", study.tuning.prompts, problems)
        _scorers("tuning.scorers", study.tuning.scorers or (), problems)
        _options("tuning.scorer_options", study.tuning.scorer_options, problems)
        try:
            TuneOptions(objectives=study.tuning.objectives, trials=study.tuning.trials, prompts=study.tuning.prompts,
                        steps=study.tuning.steps)
        except MiroError as err:
            problems.append(str(err))
    if study.tuning is not None and study.tuning.samples_per_prompt < 1:
        problems.append(f"tuning.samples_per_prompt = {study.tuning.samples_per_prompt} must be >= 1")
    if study.control is not None:
        _prompts("control.prompts", study.control.prompts, problems)
        _options("control.scorer_options", study.control.scorer_options, problems)
        if study.control.samples_per_prompt < 1:
            problems.append(f"control.samples_per_prompt = {study.control.samples_per_prompt} must be >= 1")
        if not study.control.values or any(not 0 <= v <= 1 for v in study.control.values):
            problems.append(f"control.values = {list(study.control.values)}: give at least one target, each in [0, 1]")
    allowed = [f.name for f in fields(SlurmResources)]
    for group, members in stages.groups.items():
        outside = [n for n in members if n not in stages.annotate]
        if outside:
            problems.append(f"data.groups.{group} names {outside}, which data.annotate does not list; add them to data.annotate")
    groups = [f"annotate:{g}" for g in stages.groups]
    for kind, changes in study.resources.items():
        if kind not in KINDS and kind not in groups:
            problems.append(f'resources: unknown unit kind "{kind}"{did_you_mean(kind, [*KINDS, *groups])}; kinds: '
                            f'{", ".join([*KINDS, *groups])}')
        for name in changes:
            if name not in allowed:
                problems.append(f'resources.{kind}: unknown field "{name}"{did_you_mean(name, allowed)}')
    if study.weights:
        problems += weights_problems(study.weights)
    return problems


def weights_problems(path: str) -> list[str]:
    """The weights file's own check (every entry's path, sha256 and config)."""
    if not Path(path).expanduser().is_file():
        return [f"weights file {path} does not exist; pass --weights FILE (see `python -m miro weights --help`)"]
    from miro.weights_file import check

    return [f"weights file {path}: {problem}" for problem in check(path)]


def validate(study: Study) -> None:
    """Refuse a study with any problem, naming all of them."""
    problems = study_problems(study)
    if len(problems) == 1:
        raise MiroError(f"study {study.name}: {problems[0]} (nothing was planned)")
    if problems:
        raise MiroError(f"study {study.name} has {len(problems)} problems; nothing was planned:\n  - " + "\n  - ".join(problems))


YEAR_HOURS = 24 * 365


def absurd_plan(plan: Any, table: Mapping[str, Any], max_gpu_hours: float, gpus: Callable[[Any], int]) -> str:
    """Why a study's plan (harness.plan.Plan) is absurd: more GPU-hours than `max_gpu_hours` in all, or a training
    unit longer than a year on its `gpus(unit)` GPUs; "" when it is not. Estimated as `--dry-run` estimates."""
    from harness.estimate import stage_gpu_hours

    hours = stage_gpu_hours(plan, table)
    total = sum(h for h in hours.values() if h)
    if total > max_gpu_hours:
        stages = ", ".join(f"{stage} {h:,.0f}" for stage, h in hours.items() if h)
        return f"study {plan.study.name} is estimated at {total:,.0f} GPU-hours ({stages}), over --max-gpu-hours {max_gpu_hours:,.0f}"
    for planned in plan.train:
        optim = planned.unit.params["config"]["optim"]
        days = optim["steps"] * optim["batch_size"] * table["train"]["per_sample"] / 3600 / gpus(planned) / 24
        if days > YEAR_HOURS / 24:
            return (f"{planned.label} is estimated at {days:,.0f} days on its {gpus(planned)} GPU(s) ({optim['steps']:,} steps of batch "
                    f"{optim['batch_size']}), longer than a year")
    return ""
