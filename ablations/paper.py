"""The paper's study: 16 arms (baseline, MIRO, seven specialists, seven leave-one-out) at real scale with the
released settings, on the user's webdataset shards and the local weights their weights file names.

    nox -s sweep -- paper --data /data/shards --weights weights.toml [--executor slurm ...] [--dry-run]
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ablations.rewards import reward_arms
from harness.study import Control, DataStages, Study, Suite, Tuning
from miro.errors import MiroError
from miro.presets import PAPER_REWARDS
from miro.presets import paper as paper_recipe
from miro.weights_file import GENEVAL_OPTIONS, WeightsFile

HELD_OUT = ("clip_score",)  # OpenAI CLIP: a metric no arm trains on
PARTI_SCORERS = ("pickscore", "image_reward", "hpsv2", "aesthetic", *HELD_OUT)
# the tuned sampler's Pareto front: human preference against the held-out text alignment
TUNE_OBJECTIVES = ("pickscore", "clip_score")
GENEVAL_RULES = tuple(k for k in GENEVAL_OPTIONS if k != "colors_model")  # the weights file's thresholds, into the suite
# per unit kind, over the command line's cluster defaults (partition, account, qos)
PAPER_RESOURCES = {
    "annotate": {"gpus_per_node": 1, "cpus_per_task": 8, "mem_gb": 64, "time_min": 240, "array_parallelism": 64},
    "annotate:vqa": {"mem_gb": 128, "time_min": 480},  # VQAScore's clip-flant5-xxl: most of the scoring time
    "assemble": {"cpus_per_task": 8, "mem_gb": 64, "time_min": 60},
    "precompute": {"gpus_per_node": 1, "cpus_per_task": 8, "mem_gb": 64, "time_min": 240, "array_parallelism": 64},
    "train": {"nodes": 1, "gpus_per_node": 8, "tasks_per_node": 8, "cpus_per_task": 8, "mem_gb": 480, "time_min": 1440},
    "generate": {"gpus_per_node": 1, "cpus_per_task": 8, "mem_gb": 64, "time_min": 120, "array_parallelism": 64},
    "evaluate": {"gpus_per_node": 1, "cpus_per_task": 8, "mem_gb": 64, "time_min": 240},
    "tune": {"gpus_per_node": 1, "cpus_per_task": 8, "mem_gb": 64, "time_min": 720},
    "control": {"gpus_per_node": 1, "cpus_per_task": 8, "mem_gb": 64, "time_min": 480},
}


def paper(data: str = "", weights: str = "") -> Study:
    """`data`: the webdataset shards to annotate and train on; `weights`: the weights file (default $MIRO_WEIGHTS)."""
    from miro.weights_file import load, merge_scorer_options

    if not data:
        raise MiroError("the paper study trains on your webdataset shards: pass --data /path/to/shards (a folder of .tar files or a brace pattern)")
    local = load(weights or None)
    if not local.source:
        raise MiroError("the paper study reads every model path from a weights file: pass --weights FILE or set MIRO_WEIGHTS")
    miro = replace(paper_recipe(data=data, text=local.path("t5"), vae=local.path("vae")), name="miro")
    options = merge_scorer_options(local, {})  # every scorer the weights file names, paths checked
    geneval, parti = paper_suites(local, options)
    validation = local.path("benchmarks.validation") or parti_prompts(local, "validation")
    tuning = Tuning(prompts=validation, objectives=TUNE_OBJECTIVES, trials=48, samples_per_prompt=2, scorers=TUNE_OBJECTIVES,
                    scorer_options={n: o for n, o in options.items() if n in TUNE_OBJECTIVES})
    return Study(
        "paper", tuple(reward_arms(miro)), seeds=(0,), eval_steps=tuple(range(25_000, 500_001, 25_000)), tune_arm="miro",
        description="The paper's study (arXiv 2510.25897) at real scale: what does each reward buy, and at what cost?",
        evaluation=(geneval, parti), tuning=tuning,
        control=Control(prompts=parti.prompts, scorers=PARTI_SCORERS, scorer_options=parti.scorer_options),
        data=DataStages(annotate=PAPER_REWARDS, scorer_options=options, groups={"vqa": ("vqascore",)}, annotate_shards=256,
                        precompute=True, precompute_shards=64),
        resources=PAPER_RESOURCES, weights=local.source)


def parti_prompts(local: WeightsFile, split: str) -> str:
    """PartiPrompts (the weights file's copy, else the pinned download), or its `split` (harness.prompts.held_out_split).

    Without a `[benchmarks] validation` file, the sampler is tuned on every tenth PartiPrompts text of each category
    and the reward means are reported on the other 1,463 prompts, so no reported prompt was tuned on."""
    prompts = local.path("benchmarks.parti") or "parti"
    return f"{prompts}:{split}" if split else prompts


def paper_suites(local: WeightsFile, options: Mapping[str, Mapping[str, Any]]) -> tuple[Suite, Suite]:
    """The paper's evaluation: GenEval with Mask2Former (the seven rewards and held-out CLIP on its images) and
    PartiPrompts with the reward models, from the local files the weights file names."""
    geneval = Suite("geneval", prompts=local.path("geneval.metadata") or "geneval", samples_per_prompt=4,
                    scorers=(*PAPER_REWARDS, *HELD_OUT), scorer_options=options, geneval_detector=local.path("geneval.detector"),
                    geneval_classes=local.path("geneval.class_names"), geneval_colors=local.path("geneval.colors") or "openai",
                    geneval_colors_model=local.geneval.get("colors_model", "ViT-L-14"), features="", shards=8,
                    **{f"geneval_{k}": local.geneval[k] for k in GENEVAL_RULES if k in local.geneval})
    parti = Suite("parti", prompts=parti_prompts(local, "" if "benchmarks.validation" in local.entries else "test"), samples_per_prompt=1, scorers=PARTI_SCORERS,
                  scorer_options={n: o for n, o in options.items() if n in PARTI_SCORERS}, geneval=False,
                  features="", reference=local.path("benchmarks.fid_reference"), shards=8)
    if parti.reference:
        parti = replace(parti, features="pixels")
    return geneval, parti
