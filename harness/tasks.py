"""The unit functions of a study (harness.units.KINDS names them) and the folder layout of their outputs.

Each is `fn(work_dir, **params) -> dict` (see harness.units), resumable by being called again in the same
work_dir: annotation skips scored pairs, training resumes from its last checkpoint, evaluation skips images and
scores already written. A generation shard writes into its evaluation's folder (distinct files per shard), which
the evaluation unit then completes; that is the one place a unit writes outside its own work_dir.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from miro.checkpoint import checkpoint_path
from miro.config import RunConfig, SampleConfig, from_dict

RUN = "run"  # a training unit's run folder inside its work_dir
ANNOTATIONS = "annotations.parquet"  # an annotation shard's, and the assembled, annotation file


def run_dir(work_dir: Path | str) -> Path:
    """The run folder of a training unit."""
    return Path(work_dir) / RUN


def checkpoint_of(work_dir: Path | str, step: int) -> Path:
    """A training unit's checkpoint of `step`."""
    return checkpoint_path(run_dir(work_dir), step)


def _scorers(names: Sequence[str], options: Mapping[str, Mapping[str, Any]]) -> list[Any]:
    from miro.rewards.registry import load_scorer

    return [load_scorer(name, **options.get(name, {})) for name in names]


def _images(source: str, path: str) -> Any:
    from miro.data.sources import ImageFolderSource, WebDatasetSource

    return ImageFolderSource(path) if source == "folder" else WebDatasetSource(path)


def annotate_shard(work_dir: Path, source: str, path: str, scorers: list[str], scorer_options: dict[str, dict[str, Any]],
                   shard: int, shards: int, max_failed: float = 0.01, threads: int = 1) -> dict[str, Any]:
    """Score shard `shard` of `shards` of the training images with every scorer (one SLURM array task)."""
    from miro.data.annotate import annotate

    torch.set_num_threads(threads)
    out = Path(work_dir) / ANNOTATIONS
    report = annotate(_images(source, path), _scorers(scorers, scorer_options), out, shard_index=shard, shard_count=shards,
                      progress=False, max_failed=max_failed)
    return {"annotations": str(out), "line": report.line(), "samples_per_s": report.samples_per_second,
            "samples": report.total, "unusable": len(report.unusable), "first_unusable": unusable_examples(report.unusable)}


def precompute_shard(work_dir: Path, source: str, path: str, out: str, vae_path: str, text_path: str, resolution: int,
                     max_tokens: int, shard: int, shards: int, max_failed: float = 0.01, threads: int = 1) -> dict[str, Any]:
    """Encode shard `shard` of `shards` of the training images' VAE latents and captions' T5 features into the
    study's features folder `out` (shared by the shards, distinct files per shard; one SLURM array task)."""
    from miro.data.precompute import PrecomputeOptions, precompute

    torch.set_num_threads(threads)
    options = PrecomputeOptions(vae_path=vae_path, text_path=text_path, resolution=resolution, max_tokens=max_tokens,
                                device="cuda" if torch.cuda.is_available() else "cpu", max_failed=max_failed)
    report = precompute(_images(source, path), out, options, shard_index=shard, shard_count=shards, progress=False)
    return {"features": out, "line": report.line(), "samples": report.stored + len(report.failed), "unusable": len(report.failed),
            "first_unusable": unusable_examples(report.failed)}


def unusable_examples(reasons: Mapping[int, str], shown: int = 3) -> list[str]:
    """The first samples a data stage could not use, with why (for the report's data facts)."""
    return [f"sample {sid}: {why}" for sid, why in list(reasons.items())[:shown]]


def assemble_annotations(work_dir: Path, parts: list[str], rewards: list[str]) -> dict[str, Any]:
    """Merge the annotation shards into one file and fit the reward bins every arm shares."""
    from miro.data.annotate import merge_annotations
    from miro.data.training_set import fit_bins
    from miro.rewards.binning import bins_beside

    out = merge_annotations(parts, Path(work_dir) / ANNOTATIONS)
    fit_bins(out, rewards)
    return {"annotations": str(out), "bin_edges": str(bins_beside(out))}


def train_arm(work_dir: Path, config: dict[str, Any], data_root: str, threads: int = 1) -> dict[str, Any]:
    """Train (or resume) one arm x seed in work_dir/run; under DDP every rank calls this (miro.train shards the batch)."""
    from miro.data.build import build_training_set
    from miro.train import train

    torch.set_num_threads(threads)
    cfg = from_dict(RunConfig, config)
    tic = time.perf_counter()
    dataset = build_training_set(cfg, Path(data_root), progress=False)
    last = train(cfg, dataset, run_dir(work_dir), progress=False)
    return {"run_dir": str(run_dir(work_dir)), "last_checkpoint": str(last), "train_seconds": time.perf_counter() - tic,
            "samples": len(dataset), "excluded": dict(getattr(dataset, "excluded", {}))}


def evaluation_options(suite: Mapping[str, Any], sample: Mapping[str, Any]) -> Any:
    """A study suite (harness.study.Suite as plain data) and an arm's sampler -> harness.evaluation's options."""
    from harness.evaluation import EvaluationOptions, GenerationOptions
    from harness.geneval.rules import GenEvalOptions

    scorers = suite["scorers"]
    rules = GenEvalOptions(threshold=suite["geneval_threshold"], counting_threshold=suite["geneval_counting_threshold"],
                           max_objects=suite["geneval_max_objects"], max_overlap=suite["geneval_max_overlap"])
    return EvaluationOptions(
        prompts=suite["prompts"], limit=suite["limit"], scorers=None if scorers is None else tuple(scorers),
        scorer_options=suite["scorer_options"], geneval=suite["geneval"], geneval_detector=suite["geneval_detector"],
        geneval_classes=suite["geneval_classes"], geneval_colors=suite["geneval_colors"],
        geneval_colors_model=suite["geneval_colors_model"], geneval_rules=rules, features=suite["features"],
        reference=suite["reference"], reference_size=suite["reference_size"],
        generation=GenerationOptions(sample=from_dict(SampleConfig, sample), samples_per_prompt=suite["samples_per_prompt"],
                                     seed=suite["seed"]))


def generate_shard(work_dir: Path, out: str, checkpoint: str, sample: dict[str, Any], suite: dict[str, Any], shard: int,
                   shards: int, threads: int = 1) -> dict[str, Any]:
    """Generate and score shard `shard` of `shards` of one evaluation's images into its folder `out`."""
    from harness.evaluation import Shard, evaluate
    from miro.inference import load_generator

    torch.set_num_threads(threads)
    result = evaluate(load_generator(checkpoint), Path(out), evaluation_options(suite, sample), Shard(shard, shards),
                      checkpoint=checkpoint, progress=False)
    return {"shard": [shard, shards], "throughput": result["throughput"]}


def evaluate_checkpoint(work_dir: Path, checkpoint: str, sample: dict[str, Any], suite: dict[str, Any],
                        threads: int = 1) -> dict[str, Any]:
    """Generate (what no shard made), score and judge one checkpoint on one suite (harness.evaluation), into work_dir;
    its metrics also as TensorBoard scalars at the checkpoint's step."""
    from harness.evaluation import evaluate
    from harness.evaluation.curves import write_scalars
    from miro.inference import load_generator

    torch.set_num_threads(threads)
    summary = evaluate(load_generator(checkpoint), Path(work_dir), evaluation_options(suite, sample), checkpoint=checkpoint,
                       progress=False)
    write_scalars(Path(work_dir), suite["name"], summary)
    return {"summary": str(Path(work_dir) / "summary.json"), "images": str(Path(work_dir) / "images.jsonl"),
            "throughput": summary.get("throughput", {})}


def tune_checkpoint(work_dir: Path, checkpoint: str, tuning: dict[str, Any], threads: int = 1) -> dict[str, Any]:
    """An Optuna study of guidance scale, reward targets and steps on validation prompts (harness.tune)."""
    from harness.tune import TuneOptions, tune

    torch.set_num_threads(threads)
    options = TuneOptions(objectives=tuple(tuning["objectives"]), trials=tuning["trials"], prompts=tuning["prompts"],
                          steps=tuple(tuning["steps"]), samples_per_prompt=tuning["samples_per_prompt"], seed=tuning["seed"],
                          scorers=None if tuning["scorers"] is None else tuple(tuning["scorers"]),
                          scorer_options=tuning["scorer_options"])
    result = tune(checkpoint, Path(work_dir), options, progress=False)
    return {"pareto": str(Path(work_dir) / "pareto.json"), "trials": len(result["trials"])}


def control_targets(work_dir: Path, checkpoint: str, sample: dict[str, Any], control: dict[str, Any],
                    threads: int = 1) -> dict[str, Any]:
    """Controllability: sweep each training reward's positive target over the values, others as sampled by default."""
    from harness.evaluation import EvaluationOptions, GenerationOptions, TargetSweep, evaluate_sweep
    from miro.inference import load_generator

    torch.set_num_threads(threads)
    generator = load_generator(checkpoint)
    values = tuple(float(v) for v in control["values"])
    scorers = control["scorers"]
    options = EvaluationOptions(prompts=control["prompts"], features="", reference="", scorers=None if scorers is None else tuple(scorers),
                                scorer_options=control["scorer_options"], generation=GenerationOptions(
        sample=from_dict(SampleConfig, sample), samples_per_prompt=control["samples_per_prompt"], seed=control["seed"]))
    for reward in generator.model.reward_names:
        evaluate_sweep(generator, Path(work_dir) / reward, options, TargetSweep(reward, values), checkpoint=checkpoint,
                       progress=False)
    return {"rewards": list(generator.model.reward_names), "values": list(values)}
