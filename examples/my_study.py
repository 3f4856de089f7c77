"""An example study on your own data: the paper's study (ablations/paper.py), shrunk so a laptop runs it.

From a fresh clone, with the project installed (about 5 minutes on 2 cores):

    python -m miro weights tiny tiny-weights       # tiny random models in the real formats + tiny-weights/weights.toml
    python -m miro example-data example-data       # 64 shapes-world images with captions, as 2 webdataset shards
    python -m harness.sweep examples/my_study.py --data example-data --weights tiny-weights/weights.toml

The last command annotates the images with three reward models (two array tasks), bins the scores, encodes every
image with the VAE and every caption with T5 once (two more), trains a no-reward baseline and MIRO, evaluates both
at two checkpoints on GenEval (one prompt of four of its tasks) and PartiPrompts (three prompts) with the three
rewards and a held-out CLIP score, tunes MIRO's sampler on PartiPrompts' validation split, and writes
runs/sweeps/my-study/report.html. Run it again to resume; add `--executor slurm --partition ...` to run every
stage as SLURM jobs, and `--dry-run` to see the plan first.

With tiny weights the numbers mean nothing: the point is the path. For a real study, fetch the real weights
(`python -m miro weights fetch weights`), point --data at your shards, and grow the sizes in `small` (or drop it
to train the paper's recipe as released).
"""
from __future__ import annotations

from dataclasses import replace

from ablations.paper import paper
from ablations.rewards import reward_arms
from harness.study import Study
from miro.config import RunConfig

REWARDS = ("pickscore", "sciscore", "hpsv2")  # what the arms are conditioned on
SCORERS = (*REWARDS, "clip_score")  # and a held-out metric no arm trains on


def small(cfg: RunConfig) -> RunConfig:
    """The paper's recipe (RIN, flow objective, VAE latents, T5 text) at a size a CPU trains in seconds."""
    return replace(
        cfg, data=replace(cfg.data, resolution=32, num_samples=64), rewards=replace(cfg.rewards, names=REWARDS, bins=8),
        text=replace(cfg.text, max_tokens=8),
        model=replace(cfg.model, image_size=16, patch_size=4, width=32, heads=2, cond_heads=2, data_dim=32, num_latents=8,
                      rin_blocks=1, rin_layers_per_block=1, read_write_heads=2, text_registers=2, cond_blocks=1),
        optim=replace(cfg.optim, steps=20, batch_size=8, warmup_steps=2, precision="fp32"),
        sample=replace(cfg.sample, steps=2), checkpoint_every=10)


def study(data: str = "", weights: str = "") -> Study:
    """`data`: your webdataset shards (--data); `weights`: your weights file (--weights, or $MIRO_WEIGHTS)."""
    full = paper(data=data, weights=weights)
    geneval, parti = full.evaluation
    options = {name: o for name, o in geneval.scorer_options.items() if name in SCORERS}
    return replace(
        full, name="my-study", arms=tuple(reward_arms(small(full.arm("miro").config))[:2]), eval_steps=(10, 20),
        description="Does conditioning on PickScore, SciScore and HPSv2 help, on the example data?",
        evaluation=(replace(geneval, scorers=SCORERS, scorer_options=options, limit=4, samples_per_prompt=1, shards=2),
                    replace(parti, scorers=SCORERS, scorer_options=options, limit=3, samples_per_prompt=2, shards=2)),
        tuning=replace(full.tuning, trials=2, samples_per_prompt=1, steps=(2,)), control=None,
        data=replace(full.data, annotate=REWARDS, scorer_options=options, groups={}, annotate_shards=2, precompute_shards=2),
        resources={})
