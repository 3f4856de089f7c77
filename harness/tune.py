"""Tune inference knobs of a trained arm with Optuna, on validation prompts only.

Knobs: the guidance scale g, one positive target per training reward, and the number of sampler steps.
Each trial generates and evaluates the validation half of the prompt set (harness.evaluation) into its own
folder; the test half, used by reports, is never seen (the paper tuned its MIRO-dagger target on the test
set; we do not). One objective gives the best trial; two or more give a Pareto front.

The study lives in Optuna's journal file (safe for many SLURM jobs appending to one file on a shared
filesystem) or in any RDB URL; running the same command again resumes it and only runs the trials left.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna

from harness.evaluation import EvaluationOptions, GenerationOptions, evaluate
from miro.errors import MiroError, check_range
from miro.inference import load_generator
from miro.manifest import write_json_atomic
from miro.sample import guidance_branches
from miro.weights_file import WeightsFile


@dataclass(frozen=True)
class TuneOptions:
    """What to optimise and over which ranges. `objectives` are metric names of an evaluation summary
    (e.g. "geneval", "shapes_quality"); all are maximised except those in `minimise`."""

    objectives: tuple[str, ...] = ("geneval", "shapes_quality")
    minimise: tuple[str, ...] = ()
    trials: int = 12
    guidance: tuple[float, float] = (1.0, 8.0)
    target_range: tuple[float, float] = (0.0, 1.0)
    steps: tuple[int, ...] = (10, 25)
    prompts: str = "shapes-validation"
    samples_per_prompt: int = 2
    seed: int = 0
    storage: str = ""  # "" = journal file in the study folder; else an RDB URL (sqlite:///..., postgresql://...)
    scorers: tuple[str, ...] | None = None  # None: every shapes reward, for a shapes checkpoint
    scorer_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.objectives:
            raise MiroError("tune: give at least one objective metric (e.g. geneval)")
        if "test" in Path(self.prompts).name:  # the set's or file's name, not the folders it sits in
            raise MiroError(f'tune prompts = "{self.prompts}" is a test split; tune on a validation split (e.g. shapes-validation) so reports stay unbiased')
        if self.trials < 1 or self.guidance[0] > self.guidance[1] or self.target_range[0] > self.target_range[1]:
            raise MiroError("tune: trials must be >= 1 and every range (low, high) must have low <= high")
        for value in (*self.guidance, *self.target_range):
            check_range("tune range bound", value)
        check_range("tune target range", self.target_range[0], 0, 1)
        check_range("tune target range", self.target_range[1], 0, 1)
        for steps in self.steps:
            check_range("tune steps", steps, 1)
        unknown = set(self.minimise) - set(self.objectives)
        if unknown:
            raise MiroError(f"tune: --minimise {', '.join(sorted(unknown))} is not among the objectives ({', '.join(self.objectives)}); add it with --objective")


def storage_for(folder: Path, options: TuneOptions) -> optuna.storages.BaseStorage | str:
    if options.storage:
        return options.storage
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    folder.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(folder / "study.journal")))


def metric_value(summary: dict[str, Any], name: str) -> float:
    metrics = summary["metrics"]
    if name not in metrics:
        raise MiroError(f'tune objective "{name}" is not a metric of the evaluation; available: {", ".join(sorted(metrics))}')
    return float(metrics[name]["value"])


def tune(checkpoint: str | Path, folder: str | Path, options: TuneOptions, progress: bool = True,
         weights: WeightsFile | None = None) -> dict[str, Any]:
    """Run (or resume) the study in `folder`; writes and returns pareto.json's content."""
    folder = Path(folder)
    generator = load_generator(checkpoint, weights=weights)
    rewards = generator.model.reward_names
    base_positive, base_negative = guidance_branches(generator.config.sample, rewards)
    directions = [optuna.study.StudyDirection.MINIMIZE if o in options.minimise else optuna.study.StudyDirection.MAXIMIZE
                  for o in options.objectives]
    study = optuna.create_study(study_name="tune", storage=storage_for(folder, options), directions=directions,
                                load_if_exists=True, sampler=optuna.samplers.TPESampler(seed=options.seed))

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        g = trial.suggest_float("guidance_scale", *options.guidance)
        steps = trial.suggest_categorical("steps", list(options.steps))
        positive = {r: trial.suggest_float(f"target.{r}", *options.target_range) for r in rewards}
        sample = replace(generator.config.sample, guidance_scale=g, steps=int(steps), positive_targets=positive,
                         negative_targets=dict(base_negative.targets))
        evaluation = EvaluationOptions(prompts=options.prompts, features="", reference="", scorers=options.scorers,
                                       scorer_options=options.scorer_options,
                                       generation=GenerationOptions(sample=sample, samples_per_prompt=options.samples_per_prompt,
                                                                    seed=options.seed))
        summary = evaluate(generator, folder / f"trial-{trial.number:04d}", evaluation, checkpoint=str(checkpoint), progress=False)
        return tuple(metric_value(summary, name) for name in options.objectives)

    finished = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    if finished < options.trials:
        study.optimize(objective, n_trials=options.trials - finished, show_progress_bar=progress)
    front = {t.number for t in study.best_trials}
    result = {
        "objectives": list(options.objectives), "directions": [d.name.lower() for d in directions], "prompts": options.prompts,
        "defaults": {"guidance_scale": generator.config.sample.guidance_scale, "targets": dict(base_positive.targets)},
        "trials": [{"number": t.number, "params": t.params, "values": t.values, "pareto": t.number in front}
                   for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE],
    }
    write_json_atomic(folder / "pareto.json", result)
    return result


def main(argv: list[str] | None = None) -> None:
    import argparse

    from miro.errors import RESUME, CommandParser, number, one_line_errors

    p = CommandParser(prog="python -m harness.tune", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a checkpoint folder, or a run folder (its last checkpoint)")
    p.add_argument("--out", required=True, help="study folder (rerun to resume)")
    p.add_argument("--objective", action="append", default=[], help="metric to maximise (repeat for a Pareto front)")
    p.add_argument("--minimise", action="append", default=[], help="an objective to minimise instead (e.g. fid)")
    p.add_argument("--trials", type=number(int, 1), default=12)
    p.add_argument("--prompts", default="shapes-validation")
    p.add_argument("--storage", default="", help="RDB URL shared by many jobs (default: a journal file in --out)")
    p.add_argument("--scorers", nargs="*", help="registered scorer names (default: every shapes reward, for shapes checkpoints)")
    p.add_argument("--scorer-option", nargs="*", default=[], metavar="NAME.KEY=VALUE", help="e.g. pickscore.model_dir=/weights/PickScore_v1")
    p.add_argument("--weights", default="", help="weights file (TOML; default $MIRO_WEIGHTS) with the scorers' options")
    args = p.parse_args(argv)
    with one_line_errors(on_interrupt=RESUME):
        from miro import weights_file

        weights = weights_file.load(args.weights)
        scorers = tuple(args.scorers) if args.scorers else None
        scorer_options = weights_file.merge_scorer_options(weights, weights_file.parse_scorer_option(args.scorer_option), scorers)
        options = TuneOptions(objectives=tuple(args.objective) or TuneOptions.objectives, minimise=tuple(args.minimise),
                              trials=args.trials, prompts=args.prompts, storage=args.storage, scorers=scorers,
                              scorer_options=scorer_options)
        result = tune(args.checkpoint, args.out, options, weights=weights)
    print(json.dumps([t for t in result["trials"] if t["pareto"]], indent=1))


if __name__ == "__main__":
    main()
