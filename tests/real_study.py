"""A small study on the real-data path for the end-to-end tests: 64 images as two webdataset shards, three real
scorers on tiny random transformers CLIP folders (the real file format), a baseline and MIRO at two checkpoints,
a few PartiPrompts rows with the generation sharded."""
from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from PIL import Image
from rewards_real.tiny_hf_clip import write_model, write_processor

# the shared benchmark files, read in place (never committed): the nearest shared/benchmarks above this file
BENCHMARKS = next((p / "shared" / "benchmarks" for p in Path(__file__).resolve().parents if (p / "shared" / "benchmarks").is_dir()),
                  Path("shared/benchmarks"))
PARTI = BENCHMARKS / "partiprompts" / "PartiPrompts.tsv"
SCORERS = ("pickscore", "sciscore", "clip_score")
COLORS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220), "yellow": (230, 220, 40)}

STUDY = '''
from dataclasses import replace

from ablations.rewards import reward_arms
from harness.study import DataStages, Study, Suite
from miro.config import DataConfig
from miro.presets import smoke

SCORERS = {scorers!r}
OPTIONS = {options!r}


def study():
    base = smoke()
    miro = replace(base, name="miro", data=DataConfig(source="webdataset", path={shards!r}, resolution=32, num_samples=64),
                   rewards=replace(base.rewards, names=SCORERS))
    parti = Suite("parti", prompts={prompts!r}, samples_per_prompt=2, scorers=SCORERS, scorer_options=OPTIONS,
                  geneval=False, features="", shards=2)
    return Study("real-tiny", tuple(reward_arms(miro)[:2]), eval_steps=(10, 20), evaluation=(parti,),
                 data=DataStages(annotate=SCORERS, scorer_options=OPTIONS, annotate_shards=2))
'''


def png(color: tuple[int, int, int], rng: random.Random) -> bytes:
    image = Image.new("RGB", (32, 32), (128, 128, 128))
    x, y = rng.randrange(0, 20), rng.randrange(0, 20)
    image.paste(color, (x, y, x + 12, y + 12))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_study(root: Path) -> Path:
    """Write the weights, the shards, a few PartiPrompts rows and the study file under `root`; returns the study file."""
    import webdataset as wds

    if not PARTI.is_file():
        pytest.skip(f"PartiPrompts not found at {PARTI}")
    processor, model = write_processor(root / "processor"), write_model(root / "clip", seed=3)
    options = {name: {"model_dir": str(model), "processor_dir": str(processor)} for name in SCORERS}
    rng = random.Random(0)
    (root / "shards").mkdir()
    for shard in range(2):
        with wds.TarWriter(str(root / "shards" / f"data-{shard:03d}.tar")) as sink:
            for i in range(32):
                name = rng.choice(list(COLORS))
                sink.write({"__key__": f"{shard * 32 + i:06d}", "png": png(COLORS[name], rng), "txt": f"a {name} square"})
    rows = PARTI.read_text().splitlines()[:4]
    (root / "parti.tsv").write_text("\n".join(rows) + "\n")
    path = root / "my_study.py"
    path.write_text(STUDY.format(scorers=SCORERS, options=options, shards=str(root / "shards"), prompts=str(root / "parti.tsv")))
    return path
