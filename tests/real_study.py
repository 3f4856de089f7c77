"""The paper's study (ablations/paper.py) shrunk with dataclasses.replace, for the end-to-end tests: 64 images as
two webdataset shards, tiny random models in the real file formats (FLAN-T5, the SDXL VAE, PickScore, SciScore,
HPSv2, OpenAI CLIP, GenEval's Mask2Former and colour classifier) named by one weights file, a baseline and MIRO
on a tiny RIN at two checkpoints, annotation and precomputation as arrays, a few GenEval and PartiPrompts rows
(generation sharded), and the sampler tuned on validation prompts."""
from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from PIL import Image
from tiny_real_weights import COLORS, write_all

# the shared benchmark files, read in place (never committed): the nearest shared/benchmarks above this file
BENCHMARKS = next((p / "shared" / "benchmarks" for p in Path(__file__).resolve().parents if (p / "shared" / "benchmarks").is_dir()),
                  Path("shared/benchmarks"))
PARTI = BENCHMARKS / "partiprompts" / "PartiPrompts.tsv"
GENEVAL = BENCHMARKS / "geneval"
REWARDS = ("pickscore", "sciscore", "hpsv2")  # what the arms train on
SCORERS = (*REWARDS, "clip_score")  # and the held-out metric
GENEVAL_TASKS = 4  # GenEval rows evaluated, one per task
CORRUPT = 40  # the sample whose image cannot be read: every data stage counts it, the report names it

STUDY = '''
from dataclasses import replace

from ablations.paper import paper
from ablations.rewards import reward_arms

REWARDS = {rewards!r}
SCORERS = {scorers!r}


def tiny(cfg):
    """The paper's recipe at a size a CPU trains in seconds: the same RIN, objective, VAE latents and T5 text."""
    return replace(
        cfg, data=replace(cfg.data, resolution=32, num_samples={images}), rewards=replace(cfg.rewards, names=REWARDS, bins=8),
        text=replace(cfg.text, max_tokens=8),
        model=replace(cfg.model, image_size=16, patch_size=4, width=32, heads=2, cond_heads=2, data_dim=32, num_latents=8,
                      rin_blocks=1, rin_layers_per_block=1, read_write_heads=2, text_registers=2, cond_blocks=1),
        optim=replace(cfg.optim, steps={steps}, batch_size=8, warmup_steps=2, precision="fp32"),
        sample=replace(cfg.sample, steps=2), checkpoint_every={steps} // 2)


def study():
    full = paper(data={shards!r}, weights={weights!r})
    geneval, parti = full.evaluation
    options = {{n: o for n, o in geneval.scorer_options.items() if n in SCORERS}}
    return replace(
        full, name="paper-tiny", arms=tuple(reward_arms(tiny(full.arm("miro").config))[:{arms}]), eval_steps=({steps} // 2, {steps}),
        evaluation=(replace(geneval, scorers=SCORERS, scorer_options=options, limit={tasks}, samples_per_prompt=1, shards=2),
                    replace(parti, scorers=SCORERS, scorer_options=options, samples_per_prompt=2, shards=2)),
        tuning=replace(full.tuning, trials=2, samples_per_prompt=1), control=None,
        data=replace(full.data, annotate=REWARDS, scorer_options=options, groups={{}}, annotate_shards=2, precompute_shards=2,
                     max_failed=0.05),  # one image of 64 is corrupt
        resources={{}})
'''

WEIGHTS = '''
[t5]
path = "{t5}"
[vae]
path = "{vae}"
[scorers.pickscore]
model_dir = "{pickscore}"
processor_dir = "{processor}"
[scorers.sciscore]
model_dir = "{clip_score}"
processor_dir = "{processor}"
[scorers.clip_score]
model_dir = "{clip_score}"
processor_dir = "{processor}"
[scorers.hpsv2]
checkpoint = "{hps}"
model_name = "{hps_config}"
[geneval]
detector = "{detector}"
metadata = "{geneval}/evaluation_metadata.jsonl"
class_names = "{geneval}/object_names.txt"
colors = "{colors}"
colors_model = "{colors_config}"
threshold = 0.0  # the tiny random detector's scores are low: keep every detection, so the rules see objects
[benchmarks]
parti = "{parti}"
validation = "{validation}"
'''


def png(color: tuple[int, int, int], rng: random.Random) -> bytes:
    image = Image.new("RGB", (32, 32), (128, 128, 128))
    x, y = rng.randrange(0, 20), rng.randrange(0, 20)
    image.paste(color, (x, y, x + 12, y + 12))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_study(root: Path, images: int = 64, arms: int = 2, steps: int = 20) -> Path:
    """Write the tiny weights and their weights file, the shards (`images` in two), a few PartiPrompts rows as the test
    prompts and two others as validation prompts, and the study file (the first `arms` arms, trained `steps` steps,
    evaluated half-way and at the end) under `root`; returns the study file."""
    import webdataset as wds

    if not (PARTI.is_file() and (GENEVAL / "evaluation_metadata.jsonl").is_file()):
        pytest.skip(f"PartiPrompts / GenEval metadata not found under {BENCHMARKS}")
    paths = write_all(root / "weights")
    rng = random.Random(0)
    (root / "shards").mkdir()
    for shard in range(2):
        with wds.TarWriter(str(root / "shards" / f"data-{shard:03d}.tar")) as sink:
            for i in range(images // 2):
                name, shape = rng.choice(list(COLORS)), rng.choice(("circle", "square"))
                sid = shard * images // 2 + i
                image = png(COLORS[name], rng) if sid != CORRUPT else b"\x89PNG cut short"
                sink.write({"__key__": f"{sid:06d}", "png": image, "txt": f"a photo of a {name} {shape}"})
    header, *rows = PARTI.read_text().splitlines()
    (root / "parti.tsv").write_text("\n".join([header, *rows[:3]]) + "\n")
    (root / "validation.tsv").write_text("\n".join([header, *rows[100:102]]) + "\n")
    weights = root / "weights.toml"
    weights.write_text(WEIGHTS.format(**{k: str(v) for k, v in paths.items()}, geneval=GENEVAL, parti=root / "parti.tsv",
                                      validation=root / "validation.tsv"))
    path = root / "my_study.py"
    path.write_text(STUDY.format(rewards=REWARDS, scorers=SCORERS, shards=str(root / "shards"), weights=str(weights),
                                 tasks=GENEVAL_TASKS, images=images, arms=arms, steps=steps))
    return path
