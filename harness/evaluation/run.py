"""Evaluate one checkpoint: generate, score, judge with GenEval, measure diversity and FID/KID, summarise.

Everything is checked before any image is made (prompts, scorers, detector, features, reward targets).
Every stage resumes: images, scores and GenEval verdicts already on disk are skipped, so an interrupted
evaluation continues when the same command runs again. A sharded run (shard i of n) only generates and
scores its part; the run without a shard then merges the shards' scores and finishes the rest.
Output folder:
    images/          GenEval's layout (<index>/metadata.jsonl, <index>/samples/NNNN.png) + generation.json
    scores.parquet   per-image scores with each scorer's fingerprint (miro.data.annotate format)
    geneval.jsonl    GenEval's result rows (the reference tool's format)
    images.jsonl     per-image rows: seed, prompt, every score, the GenEval verdict
    summary.json     every metric with its role, interval and provenance; throughput; manifest
    best_of_n.json   best-of-N curves, when a selection scorer is given
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from harness.evaluation.diversity import per_prompt_diversity
from harness.evaluation.features import Features, build_features, extract, features_spec
from harness.evaluation.fidelity import fid_kid, folder_reference, shapes_reference, shapes_reference_seed
from harness.evaluation.generate import WHOLE, GenerationOptions, Shard, checkpoint_identity, generate_images
from harness.evaluation.modes import TargetSweep, best_of_n_curves, sweep_table
from harness.evaluation.roles import HELD_OUT, metric_roles
from harness.evaluation.scoring import default_scorers, load_scorers, read_scores, score_images, scores_path
from harness.evaluation.stored import non_finite
from harness.evaluation.summary import diversity_metrics, geneval_metrics, image_rows, scorer_metrics
from harness.geneval.evaluate import evaluate_folder
from harness.geneval.metadata import download_geneval_files, read_class_names
from harness.geneval.rules import GenEvalOptions
from harness.prompts import Prompt, load_prompts
from miro.config import RunConfig, to_dict
from miro.data.build import shapes_world
from miro.data.shapes import ShapesWorldConfig
from miro.data.sources import decode_image
from miro.detection import ColorClassifier, Detector
from miro.errors import MiroError, unknown_name_error
from miro.files import remove_leftovers, write_text_atomic
from miro.inference import Generator
from miro.manifest import build_manifest, write_json_atomic
from miro.rewards.real.open_clip_arch import open_clip_arch
from miro.rewards.real.sources import downloaded_from
from miro.weights_file import scorer_option_problem


@dataclass(frozen=True)
class EvaluationOptions:
    """What to evaluate and with what; see the module docstring for the outputs.

    scorers: registry names (None: every shapes reward, for a shapes-world checkpoint);
    scorer_options: name -> keyword options of its factory (weights paths, device);
    geneval_*: the real detector (a Mask2Former folder), its class names and the colour classifier's open_clip
    weights (a file or tag); the shapes world uses its analytic detector and needs none of them;
    features: "pixels", "inception=PATH" or "" (no diversity, no FID/KID);
    reference: FID/KID reference, "shapes" (held-out shapes images), an image folder, or "" (none).
    """

    prompts: str = "shapes"
    limit: int = 0  # 0: every prompt; k: k prompts stratified by group (GenEval tag, Parti category)
    generation: GenerationOptions = GenerationOptions()
    scorers: tuple[str, ...] | None = None
    scorer_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    geneval: bool = True
    geneval_detector: str = ""
    geneval_classes: str = ""
    geneval_colors: str = "openai"
    geneval_colors_model: str = "ViT-L-14"  # open_clip architecture, or an open_clip config .json
    geneval_rules: GenEvalOptions = GenEvalOptions()  # thresholds, max objects, overlap
    allow_download: bool = False  # let GenEval / PartiPrompts files and the colour classifier's "openai" weights download
    features: str = "pixels"
    reference: str = "shapes"
    reference_size: int = 2000
    best_of_n: str = ""
    score_batch_size: int = 64
    benchmark_cache: str = "~/.cache/miro/benchmarks"

    def __post_init__(self) -> None:
        if self.limit < 0 or self.reference_size < 2 or self.score_batch_size < 1:
            raise MiroError(f"limit = {self.limit} must be >= 0, reference size = {self.reference_size} >= 2 "
                            f"and score batch size = {self.score_batch_size} >= 1")
        if self.reference and not self.features:
            raise MiroError("FID/KID need features; pass --features pixels or inception=PATH, or --reference none")


def world_of(config: RunConfig) -> ShapesWorldConfig | None:
    """The shapes world a checkpoint was trained on (None for other data)."""
    return shapes_world(config.data) if config.data.source == "shapes" else None


def plan_prompts(options: EvaluationOptions, world: ShapesWorldConfig | None) -> list[Prompt]:
    prompts = load_prompts(options.prompts, world=world, cache=options.benchmark_cache, allow_download=options.allow_download)
    return stratified(prompts, options.limit) if options.limit else prompts


def stratified(prompts: Sequence[Prompt], k: int) -> list[Prompt]:
    """k prompts taken round-robin over the groups (each group in file order), so a small --limit still
    covers every GenEval task; the prompts keep their indices (and so their images' seeds)."""
    groups: dict[str, list[Prompt]] = {}
    for prompt in prompts:
        groups.setdefault(prompt.group, []).append(prompt)
    picked: list[Prompt] = []
    for rank in range(max((len(g) for g in groups.values()), default=0)):
        picked += [g[rank] for g in groups.values() if rank < len(g)]
    return sorted(picked[:k], key=lambda p: p.index)


def build_judge(options: EvaluationOptions, prompts: Sequence[Prompt], world: ShapesWorldConfig | None,
                device: str) -> tuple[Detector, ColorClassifier] | None:
    """GenEval's detector and colour classifier for GenEval-format prompts (None: no GenEval)."""
    if not options.geneval or any(p.spec is None for p in prompts):
        return None
    if world is not None:
        from miro.rewards.shapes_detector import ShapesColorClassifier, ShapesDetector

        return ShapesDetector(world), ShapesColorClassifier(world)
    if not options.geneval_detector:
        raise MiroError("GenEval prompts need a detector: pass --geneval-detector DIR (Mask2Former saved with "
                        "save_pretrained), or --no-geneval")
    if not Path(options.geneval_colors).expanduser().is_file() and not options.allow_download:
        raise MiroError(f'the colour classifier\'s weights "{options.geneval_colors}" are not a local file; pass --geneval-colors FILE '
                        "(get it with: huggingface-cli download timm/vit_large_patch14_clip_224.openai open_clip_model.safetensors) or --allow-download")
    from harness.geneval.color import ClipColorClassifier
    from harness.geneval.mask2former import Mask2FormerDetector

    classes = options.geneval_classes or download_geneval_files(Path(options.benchmark_cache).expanduser() / "geneval", options.allow_download)[1]
    detector = Mask2FormerDetector.from_pretrained(options.geneval_detector, read_class_names(classes), device)
    import open_clip

    arch = open_clip_arch(open_clip, options.geneval_colors_model)
    return detector, ClipColorClassifier.from_open_clip(arch, options.geneval_colors, device)


def reference_batches(options: EvaluationOptions, config: RunConfig, world: ShapesWorldConfig | None, size: int) -> Iterator[torch.Tensor]:
    if options.reference == "shapes":
        if world is None:
            raise MiroError("--reference shapes needs a shapes-world checkpoint; pass a folder of real images or none")
        return shapes_reference(world, options.reference_size, shapes_reference_seed(config.data.seed))
    return folder_reference(options.reference, size, options.reference_size)


def file_batches(files: Sequence[str], batch_size: int = 64) -> Iterator[torch.Tensor]:
    for first in range(0, len(files), batch_size):
        yield torch.stack([decode_image(Path(f).read_bytes()) for f in files[first:first + batch_size]])


def feature_metrics(generator: Generator, features: Features, table: pd.DataFrame, options: EvaluationOptions,
                    world: ShapesWorldConfig | None, progress: bool) -> dict[str, Any]:
    """Per-prompt diversity (>= 2 samples per prompt) and FID/KID against the reference, on one set of features."""
    device, metrics = generator.device, {}
    batches = tqdm(file_batches(table["file"].tolist()), desc="features", disable=not progress, total=-(-len(table) // 64))
    generated = extract(features, batches, device)
    if options.generation.samples_per_prompt >= 2:
        per_prompt = per_prompt_diversity(generated, table["prompt_index"].tolist())
        metrics.update(diversity_metrics(per_prompt, features.name, HELD_OUT))
    if options.reference:
        size = generator.data_shape[-1] * generator.latent_space.downsample  # pixels
        fidelity = fid_kid(generated, extract(features, reference_batches(options, generator.config, world, size), device))
        provenance = {"features": features.fingerprint, "reference": options.reference, "role": HELD_OUT,
                      "n_generated": fidelity.n_generated, "n_reference": fidelity.n_reference}
        metrics["fid"] = {"value": fidelity.fid, **provenance}
        metrics["kid"] = {"value": fidelity.kid_mean, "std": fidelity.kid_std, **provenance}
    return metrics


def check_options(generator: Generator, options: EvaluationOptions, sweep: TargetSweep | None = None) -> None:
    """What an evaluation checks before any work, without loading a scorer: the same for a run and --dry-run."""
    from miro.rewards.registry import scorer_names
    from miro.sample import guidance_branches

    world = world_of(generator.config)
    names = list(options.scorers) if options.scorers is not None else default_scorers(world)
    known = scorer_names()
    for name in names:
        if name not in known:
            raise unknown_name_error("scorer", name, known)
    for name in options.scorer_options:
        if name not in names:
            raise MiroError(f'--scorer-option given for "{name}", which is not among the scorers ({", ".join(names)}); add it to --scorers')
        if problem := scorer_option_problem(name, options.scorer_options[name]):
            raise MiroError(problem)
    if options.best_of_n and options.best_of_n not in [*names, "geneval_correct"]:
        raise unknown_name_error("best-of-N selection scorer", options.best_of_n, [*names, "geneval_correct"])
    rewards = generator.model.reward_names
    guidance_branches(options.generation.sample, rewards)  # the targets, and a negative caption bank that reads
    if options.features:
        features_spec(options.features)
    if options.reference not in ("", "shapes") and not Path(options.reference).expanduser().is_dir():
        raise MiroError(f"--reference {options.reference} is not a folder of images; give one, or shapes, or none")
    if options.prompts.endswith((".tsv", ".jsonl")) and not load_prompts(options.prompts):
        raise MiroError(f"--prompts {options.prompts} holds no prompt; write one prompt a row")
    if sweep is not None and sweep.reward not in rewards:
        raise unknown_name_error("reward to sweep (--sweep)", sweep.reward, rewards)


def images_folder(out: Path) -> Path:
    """Where an evaluation in `out` keeps its images (image_path(images_folder(out), prompt, sample))."""
    return out / "images"


def evaluate(generator: Generator, out: str | Path, options: EvaluationOptions, shard: Shard = WHOLE,
             checkpoint: str = "", progress: bool = True) -> dict[str, Any]:
    """Run (or resume) one evaluation into `out`; returns the summary (a shard: its counts only)."""
    start = time.perf_counter()
    out, gen = Path(out), options.generation
    check_options(generator, options)
    remove_leftovers(out)  # temporaries of a killed run's records (its images' are cleared per prompt)
    config, device = generator.config, str(generator.device)
    world = world_of(config)
    prompts = plan_prompts(options, world)
    scorers = load_scorers(options.scorers or default_scorers(world), options.scorer_options, world)
    if options.best_of_n and options.best_of_n not in [*scorers, "geneval_correct"]:
        raise unknown_name_error("best-of-N selection scorer", options.best_of_n, [*scorers, "geneval_correct"])
    judge = build_judge(options, prompts, world, device) if shard.whole else None
    features = build_features(options.features) if options.features and shard.whole else None
    folder = images_folder(out)
    made = generate_images(generator, prompts, folder, gen, shard, progress)
    scored = score_images(folder, prompts, gen.samples_per_prompt, scorers, out, shard, options.score_batch_size, progress)
    throughput = {"generated": made.generated, "generation_images_per_s": made.images_per_second,
                  "scored": scored.samples, "scoring_images_per_s": scored.samples_per_second, "device": device}
    if not shard.whole:
        return {"shard": [shard.index, shard.count], "throughput": throughput}

    trained = config.rewards.conditioned
    scores = read_scores(scores_path(out))
    tic = time.perf_counter()
    verdicts = evaluate_folder(folder, out / "geneval.jsonl", *judge, options.geneval_rules, progress=progress) if judge else None
    throughput["geneval_seconds"] = time.perf_counter() - tic
    table = image_rows(folder, prompts, gen.samples_per_prompt, gen.seed, scores, verdicts)
    roles = metric_roles([*scores.attrs["scorers"], "geneval_correct"], trained)  # by per-image column
    metrics = scorer_metrics(table, scores.attrs["scorers"], roles)
    if verdicts is not None:
        metrics["geneval"] = geneval_metrics(table, verdicts, roles["geneval_correct"])
    if features is not None:
        tic = time.perf_counter()
        metrics.update(feature_metrics(generator, features, table, options, world, progress))
        throughput["features_seconds"] = time.perf_counter() - tic
    seconds = time.perf_counter() - start
    # end to end (generate, score, judge, features, summary): meaningful when this call made the images
    throughput.update(seconds=seconds, images=len(table), images_per_s=made.generated / seconds if made.generated else None)

    if found := non_finite(metrics):  # a NaN or inf never becomes a result: nothing is written
        raise MiroError(f"evaluation metric {found[0]} is {found[1]}, not a finite number; no summary written to {out}: "
                        "check the scorer or features that produced it on these images")
    identity = {**checkpoint_identity(generator), "path": checkpoint, "rewards_trained": list(trained),
                "scheme": config.rewards.scheme}
    summary = {
        "checkpoint": identity,
        "prompts": {"set": options.prompts, "count": len(prompts), "samples_per_prompt": gen.samples_per_prompt},
        "guidance": {"g": gen.sample.guidance_scale, "miro_cfg_rate_w": gen.sample.guidance_scale - 1,
                     "positive": dict(gen.sample.positive_targets), "negative": dict(gen.sample.negative_targets),
                     "negative_caption": gen.sample.negative_caption},
        "metrics": metrics,
        "throughput": throughput,
        "manifest": build_manifest({"evaluation": to_dict(options)}, seed=gen.seed, device=generator.device,
                                   extra={"checkpoint": identity, "scorers": scores.attrs["scorers"],
                                          "weights_downloaded_from": downloaded_from(weights_digests(scores.attrs["scorers"]))}),
    }
    if options.best_of_n:
        columns = [n for n in roles if n in table.columns]
        write_json_atomic(out / "best_of_n.json", best_of_n_curves(table, options.best_of_n, columns, roles))
    write_rows(out / "images.jsonl", table)
    write_json_atomic(out / "summary.json", summary)
    return summary


def weights_digests(scorers: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The sha256 of every weight file or folder the scorers recorded in their details."""
    return [digest for record in scorers.values() for key, digest in record.get("details", {}).items() if key.startswith("sha256:")]


def write_rows(path: Path, table: pd.DataFrame) -> None:
    """Per-image rows as JSON lines (NaN as null), through a temporary file."""
    write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in json.loads(table.to_json(orient="records"))))


def evaluate_sweep(generator: Generator, out: str | Path, options: EvaluationOptions, sweep: TargetSweep,
                   shard: Shard = WHOLE, checkpoint: str = "", progress: bool = True) -> dict[str, Any]:
    """One evaluation per target value in its own folder, then sweep.json (the whole run only)."""
    results = [evaluate(generator, sweep.folder(out, value), replace(options, generation=point), shard, checkpoint, progress)
               for value, point in sweep.points(options.generation)]
    if not shard.whole:
        return {"shard": [shard.index, shard.count], "points": results}
    table = sweep_table(sweep, results)
    write_json_atomic(Path(out) / "sweep.json", table)
    return table
