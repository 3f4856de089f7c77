"""The unit functions a sweep runs: prepare data, train an arm, evaluate a checkpoint.

Each is `fn(work_dir, **params) -> dict` (see harness.units), resumable by being called again in the same
work_dir: data preparation and annotation skip what is done, training resumes from its last checkpoint,
evaluation skips images and scores already written.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from miro.config import DataConfig, RunConfig, SampleConfig, from_dict


def prepare_data(work_dir: Path, data: dict[str, Any], threads: int = 2) -> dict[str, Any]:
    """Render, annotate and bin the shapes world once; every arm of every sweep on it reads this folder."""
    from miro.data.build import prepare_shapes

    torch.set_num_threads(threads)
    folder = prepare_shapes(from_dict(DataConfig, data), Path(work_dir), progress=False)
    return {"folder": str(folder)}


def train_arm(work_dir: Path, config: dict[str, Any], data_root: str, threads: int = 1) -> dict[str, Any]:
    """Train (or resume) one arm x seed in work_dir/run."""
    from miro.data.build import build_training_set
    from miro.train import train

    torch.set_num_threads(threads)
    cfg = from_dict(RunConfig, config)
    tic = time.perf_counter()
    dataset = build_training_set(cfg, Path(data_root), progress=False)
    last = train(cfg, dataset, Path(work_dir) / "run", progress=False)
    return {"run_dir": str(Path(work_dir) / "run"), "last_checkpoint": str(last), "train_seconds": time.perf_counter() - tic,
            "samples": len(dataset)}


def evaluate_checkpoint(work_dir: Path, checkpoint: str, sample: dict[str, Any], prompts: str, samples_per_prompt: int,
                        seed: int, reference_size: int, threads: int = 1) -> dict[str, Any]:
    """Generate, score and judge one checkpoint on a prompt set (harness.evaluation), into work_dir."""
    from harness.evaluation import EvaluationOptions, GenerationOptions, evaluate
    from miro.inference import load_generator

    torch.set_num_threads(threads)
    generator = load_generator(checkpoint)
    options = EvaluationOptions(
        prompts=prompts, reference_size=reference_size,
        generation=GenerationOptions(sample=from_dict(SampleConfig, sample), samples_per_prompt=samples_per_prompt, seed=seed),
    )
    summary = evaluate(generator, Path(work_dir), options, checkpoint=checkpoint, progress=False)
    return {"summary": str(Path(work_dir) / "summary.json"), "images": str(Path(work_dir) / "images.jsonl"),
            "throughput": summary.get("throughput", {})}


def tune_checkpoint(work_dir: Path, checkpoint: str, trials: int, threads: int = 1) -> dict[str, Any]:
    """An Optuna study of guidance scale, reward targets and steps on validation prompts (harness.tune)."""
    from harness.tune import TuneOptions, tune

    torch.set_num_threads(threads)
    result = tune(checkpoint, Path(work_dir), TuneOptions(trials=trials), progress=False)
    return {"pareto": str(Path(work_dir) / "pareto.json"), "trials": len(result["trials"])}


def control_targets(work_dir: Path, checkpoint: str, sample: dict[str, Any], prompts: str, samples_per_prompt: int,
                    seed: int, values: list[float], threads: int = 1) -> dict[str, Any]:
    """Controllability: sweep each training reward's positive target over `values`, others as sampled by default."""
    from harness.evaluation import EvaluationOptions, GenerationOptions, TargetSweep, evaluate_sweep
    from miro.inference import load_generator

    torch.set_num_threads(threads)
    generator = load_generator(checkpoint)
    options = EvaluationOptions(prompts=prompts, features="", reference="", generation=GenerationOptions(
        sample=from_dict(SampleConfig, sample), samples_per_prompt=samples_per_prompt, seed=seed))
    for reward in generator.model.reward_names:
        evaluate_sweep(generator, Path(work_dir) / reward, options, TargetSweep(reward, tuple(values)), checkpoint=checkpoint,
                       progress=False)
    return {"rewards": list(generator.model.reward_names), "values": values}
