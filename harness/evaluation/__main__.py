"""Evaluate a checkpoint from the command line. To resume, run the same command again.

    python -m harness.evaluation --checkpoint runs/shapes --out eval/shapes \\
        --positive all=1 --negative all=0 --guidance 4

Sampler and guidance default to the checkpoint's own `sample` config; `all=V` sets every training reward.
With --shard i/n a job generates and scores its part only; run once more without --shard to finish.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from harness.evaluation.generate import GenerationOptions, Shard
from harness.evaluation.modes import DEFAULT_SWEEP_VALUES, TargetSweep
from harness.evaluation.run import EvaluationOptions, check_options, evaluate, evaluate_sweep
from harness.geneval.rules import GenEvalOptions
from harness.stats.best_of_n import DEFAULT_MAX_N
from miro import weights_file
from miro.allocator import keep_freed_memory
from miro.config import SampleConfig, to_dict
from miro.errors import RESUME, CommandParser, MiroError, number, one_line_errors
from miro.inference import load_generator, resolve_checkpoint


def parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="python -m harness.evaluation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a run folder (its last checkpoint) or a checkpoint folder")
    p.add_argument("--out", required=True, help="output folder (rerun the same command to resume)")
    p.add_argument("--prompts", default="shapes", help="shapes | shapes-validation | shapes-test | geneval | parti | a .tsv (PartiPrompts) or .jsonl (GenEval metadata)")
    p.add_argument("--limit", type=number(int, 0), default=0, help="evaluate only K prompts, taken evenly across task tags / categories")
    p.add_argument("--samples", type=number(int, 1, 9999), help=f"images per prompt (default 4; {DEFAULT_MAX_N} with --best-of-n)")
    p.add_argument("--guidance", type=number(float), help="guidance scale g in v = v_neg + g (v_pos - v_neg) (MIRO's cfg_rate is g - 1)")
    p.add_argument("--positive", nargs="*", metavar="NAME=V", help="positive-branch reward targets in [0, 1]; all=V for every reward")
    p.add_argument("--negative", nargs="*", metavar="NAME=V", help="negative-branch reward targets; all=V for every reward")
    p.add_argument("--negative-caption", choices=("null", "same", "bank"), help="negative branch caption: null (\"\"), the same caption, or one drawn from --negative-bank")
    p.add_argument("--negative-bank", help="text file of prompts, one a line: the negative captions of --negative-caption bank (the authors' GenEval protocol)")
    p.add_argument("--steps", type=number(int, 1), help="ODE steps")
    p.add_argument("--solver", choices=("euler", "heun"))
    p.add_argument("--shift", type=number(float, 0, low_open=True), help="time shift (> 1 spends more steps at high noise)")
    p.add_argument("--seed", type=number(int, 0), default=0, help="base of every image's seed")
    p.add_argument("--batch-size", type=number(int, 1), default=64, help="images per sampler call")
    p.add_argument("--shard", default="0/1", help="i/n: this job's share of the images")
    p.add_argument("--scorers", nargs="*", help="registered scorer names (default: every shapes reward for shapes checkpoints; "
                   "else the weights file's scorers, else the rewards the run trained on)")
    p.add_argument("--scorer-option", nargs="*", default=[], metavar="NAME.KEY=VALUE", help="e.g. pickscore.model_dir=/weights/PickScore_v1")
    p.add_argument("--no-geneval", action="store_true", help="skip GenEval even for GenEval-format prompts")
    p.add_argument("--geneval-detector", default="", help="Mask2Former folder (save_pretrained) for real GenEval")
    p.add_argument("--geneval-classes", default="", help="GenEval's object_names.txt (default: fetched with a checksum)")
    p.add_argument("--geneval-colors", default="", help="open_clip weights file of the colour classifier (default: the weights file's; the \"openai\" tag needs --allow-download)")
    p.add_argument("--geneval-colors-model", default="", help="the colour classifier's open_clip architecture or config .json (default ViT-L-14)")
    for name, kind, text in (("threshold", number(float, 0, 1), "keep detections with score > this (0.3)"),
                             ("counting-threshold", number(float, 0, 1), "... > this for counting prompts (0.9)"),
                             ("max-objects", number(int, 1), "detections kept per class (16)"),
                             ("max-overlap", number(float, 0, 1, low_open=True), "greedy NMS keeps IoU < this; 1 turns NMS off (1.0)")):
        p.add_argument(f"--geneval-{name}", type=kind, help=f"GenEval: {text}")
    p.add_argument("--weights", default="", help="weights file (TOML; default $MIRO_WEIGHTS): scorer options, GenEval files, PartiPrompts, FID reference")
    p.add_argument("--allow-download", action="store_true", help="let GenEval / PartiPrompts files and the colour classifier's weights download (login nodes)")
    p.add_argument("--features", default="pixels", help="pixels | inception=PATH | none: features for diversity and FID/KID")
    p.add_argument("--reference", default=None, help="FID/KID reference: shapes (held-out world images) | image folder | none "
                   "(default: shapes for a shapes checkpoint, else the weights file's benchmarks.fid_reference, else none)")
    p.add_argument("--reference-size", type=number(int, 2), default=2000, help="reference images for FID/KID")
    p.add_argument("--best-of-n", default="", metavar="SCORER", help="also write best-of-N curves selected by this scorer")
    p.add_argument("--sweep", default="", metavar="REWARD", help="sweep this reward's positive target (one evaluation per value)")
    p.add_argument("--sweep-values", nargs="*", type=number(float, 0, 1), default=list(DEFAULT_SWEEP_VALUES))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--benchmark-cache", default="~/.cache/miro/benchmarks", help="where GenEval / PartiPrompts files are looked for (and fetched with --allow-download)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved options and exit")
    p.add_argument("--no-progress", action="store_true")
    return p


def parse_targets(items: Sequence[str], rewards: Sequence[str], flag: str) -> dict[str, float]:
    """NAME=V pairs; all=V expands to every training reward."""
    targets: dict[str, float] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        try:
            value = float(raw)
        except ValueError:
            sep = ""
        if not (name and sep):
            raise MiroError(f'{flag} "{item}" is not NAME=VALUE with a number (e.g. shapes_quality=1 or all=1)')
        if not 0 <= value <= 1:
            raise MiroError(f'{flag} "{item}": a reward target must lie in [0, 1] (1 = the best bin)')
        targets.update(dict.fromkeys(rewards, value) if name == "all" else {name: value})
    return targets


def sample_config(args: argparse.Namespace, base: SampleConfig, rewards: Sequence[str]) -> SampleConfig:
    """The checkpoint's sample config with the flags given on top."""
    changes: dict[str, Any] = {}
    for flag, name in (("guidance", "guidance_scale"), ("steps", "steps"), ("solver", "solver"), ("shift", "time_shift"),
                       ("negative_caption", "negative_caption"), ("negative_bank", "negative_bank")):
        if getattr(args, flag) is not None:
            changes[name] = getattr(args, flag)
    if args.positive is not None:
        changes["positive_targets"] = parse_targets(args.positive, rewards, "--positive")
    if args.negative is not None:
        changes["negative_targets"] = parse_targets(args.negative, rewards, "--negative")
    return replace(base, **changes)


def geneval_rules(args: argparse.Namespace, weights: weights_file.WeightsFile) -> GenEvalOptions:
    """GenEval's thresholds: the flags, else the weights file's [geneval] values, else the reference defaults."""
    changes = {name: weights.geneval[name] for name in ("threshold", "counting_threshold", "max_objects", "max_overlap") if name in weights.geneval}
    changes.update({name: getattr(args, f"geneval_{name}") for name in ("threshold", "counting_threshold", "max_objects", "max_overlap")
                    if getattr(args, f"geneval_{name}") is not None})
    return GenEvalOptions(**changes)


def prompt_set(which: str, weights: weights_file.WeightsFile) -> str:
    """`parti` / `geneval` read from the weights file's local copies when it names them."""
    local = {"parti": "benchmarks.parti", "geneval": "geneval.metadata"}.get(which, "")
    return weights.path(local) if local and local in weights.entries else which


def default_reference(args: argparse.Namespace, shapes: bool, weights: weights_file.WeightsFile) -> str:
    if args.reference is not None:
        return "" if args.reference == "none" else args.reference
    if shapes:
        return "shapes"
    return weights.path("benchmarks.fid_reference")  # "" (no FID) unless the file names a reference


def default_scorers(args: argparse.Namespace, shapes: bool, weights: weights_file.WeightsFile, trained: Sequence[str]) -> tuple[str, ...] | None:
    """--scorers, else (for a real checkpoint) the weights file's scorers, else the rewards the run trained on;
    None lets a shapes checkpoint use every shapes reward."""
    if args.scorers:
        return tuple(args.scorers)
    return None if shapes else (tuple(weights.scorers) or tuple(trained) or None)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    keep_freed_memory()
    with one_line_errors(on_interrupt=RESUME):
        shard = Shard.parse(args.shard)
        sweep = TargetSweep(args.sweep, tuple(args.sweep_values)) if args.sweep else None
        weights = weights_file.load(args.weights)
        generator = load_generator(args.checkpoint, args.device, weights)
        rewards = generator.config.rewards.conditioned
        shapes = generator.config.data.source == "shapes"
        samples = args.samples or (DEFAULT_MAX_N if args.best_of_n else 4)
        generation = GenerationOptions(sample_config(args, generator.config.sample, rewards), samples, args.seed, args.batch_size)
        scorers = default_scorers(args, shapes, weights, generator.config.rewards.names)
        options = EvaluationOptions(
            prompts=prompt_set(args.prompts, weights), limit=args.limit, generation=generation, scorers=scorers,
            scorer_options=weights_file.merge_scorer_options(weights, weights_file.parse_scorer_option(args.scorer_option), scorers),
            geneval=not args.no_geneval, geneval_detector=args.geneval_detector or weights.path("geneval.detector"),
            geneval_classes=args.geneval_classes or weights.path("geneval.class_names"),
            geneval_colors=args.geneval_colors or weights.path("geneval.colors") or "openai",
            geneval_colors_model=args.geneval_colors_model or weights.geneval.get("colors_model", "ViT-L-14"),
            geneval_rules=geneval_rules(args, weights), allow_download=args.allow_download,
            features="" if args.features == "none" else args.features,
            reference=default_reference(args, shapes, weights), reference_size=args.reference_size,
            best_of_n=args.best_of_n, benchmark_cache=args.benchmark_cache,
        )
        check_options(generator, options, sweep)  # what evaluate() checks first: the same for --dry-run
        checkpoint = str(resolve_checkpoint(args.checkpoint))
        if args.dry_run:
            print(json.dumps({"checkpoint": checkpoint, "step": generator.step, "out": args.out, "shard": args.shard,
                              "sweep": args.sweep or None, "options": to_dict(options)}, indent=2, default=str))
            return 0
        if sweep is not None:
            result = evaluate_sweep(generator, args.out, options, sweep, shard, checkpoint, not args.no_progress)
        else:
            result = evaluate(generator, args.out, options, shard, checkpoint, not args.no_progress)
    print(json.dumps(headline(result), indent=2, default=str))
    return 0


def headline(result: dict[str, Any]) -> dict[str, Any]:
    """The few numbers worth printing: each metric's value and role, and the throughput."""
    if "metrics" not in result or "throughput" not in result:
        return result
    return {"metrics": {name: {"value": m.get("value"), "role": m.get("role")} for name, m in result["metrics"].items()},
            "throughput": result["throughput"]}


if __name__ == "__main__":
    sys.exit(main())
