"""The example study (examples/my_study.py: the paper's study shrunk with dataclasses.replace) and its inputs, made
by the commands docs/your-study.md ends with: `python -m miro weights tiny` (tiny random models in the real file
formats for FLAN-T5, the SDXL VAE, PickScore, SciScore, HPSv2, OpenAI CLIP, GenEval's Mask2Former and colour
classifier, with stand-in GenEval and PartiPrompts files, named by one weights file) and `python -m miro
example-data` (64 images as two webdataset shards), one of whose images is then cut short, as a damaged download
leaves it. A baseline and MIRO on a tiny RIN at two checkpoints, annotation and precomputation as arrays, a few
GenEval and PartiPrompts rows (generation sharded), and the sampler tuned on PartiPrompts' validation split."""
from __future__ import annotations

import io
import os
import random
import shlex
import tarfile
import tomllib
from pathlib import Path

from guides import ROOT, run, try_it
from PIL import Image

from miro.tiny.weights import write_tiny_weights
from miro.weights_file import render

# the shared benchmark files, read in place (never committed): $MIRO_TEST_BENCHMARKS, else the nearest
# shared/benchmarks above this file
BENCHMARKS = Path(os.environ.get("MIRO_TEST_BENCHMARKS") or next(
    (p / "shared" / "benchmarks" for p in Path(__file__).resolve().parents if (p / "shared" / "benchmarks").is_dir()), "shared/benchmarks"))
EXAMPLE = ROOT / "examples" / "my_study.py"
SWEEP = "my-study"  # the example's name: its report goes to runs/sweeps/my-study
SCORERS = ("pickscore", "sciscore", "hpsv2", "clip_score")  # the example's rewards and its held-out metric
GENEVAL_TASKS = 4  # GenEval rows evaluated, one per task
CORRUPT = 40  # the sample whose image cannot be read: every data stage counts it, the report names it


def cut_short(shards: Path, sample: int) -> None:
    """Replace sample `sample`'s image in its webdataset shard by the first bytes of a PNG."""
    key = f"{sample:09d}"
    for shard in sorted(shards.glob("*.tar")):
        with tarfile.open(shard) as tar:
            members = [(m, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]  # type: ignore[union-attr]
        if not any(m.name == f"{key}.png" for m, _ in members):
            continue
        with tarfile.open(shard, "w") as tar:
            for member, data in members:
                data = b"\x89PNG cut short" if member.name == f"{key}.png" else data
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
        return
    raise AssertionError(f"no shard in {shards} holds sample {sample}")


def write_inputs(root: Path) -> list[str]:
    """Run the guide's commands but its sweep in `root`, then cut sample CORRUPT's image short; returns the sweep's
    arguments (paths made absolute, one damaged image of 64 allowed), to which a test adds its own (--root, ...)."""
    *prepare, sweep = try_it("your-study")
    run(prepare, root)
    words = shlex.split(sweep)
    assert words[:3] == ["python", "-m", "harness.sweep"], sweep
    args = [str(root / w) if (root / w).exists() else w for w in words[3:]]
    cut_short(Path(args[args.index("--data") + 1]), CORRUPT)
    return [*args, "--set", "data.max_failed=0.05"]


STUDY = '''
import runpy
from dataclasses import replace

from ablations.rewards import reward_arms

example = runpy.run_path({example!r})["study"]


def study():
    """The example study with its first {arms} arms, trained {steps} steps on {images} images, evaluated half-way and at the end."""
    s = example(data={data!r}, weights={weights!r})
    miro = s.arm("miro").config
    miro = replace(miro, data=replace(miro.data, num_samples={images}), optim=replace(miro.optim, steps={steps}),
                   checkpoint_every={steps} // 2)
    return replace(s, arms=tuple(reward_arms(miro)[:{arms}]), eval_steps=({steps} // 2, {steps}))
'''
COLORS = {"red": (230, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 230)}


def png(color: tuple[int, int, int], rng: random.Random) -> bytes:
    """A 32 px PNG: a 12 px block of `color` at a random place on grey."""
    image = Image.new("RGB", (32, 32), (128, 128, 128))
    x, y = rng.randrange(0, 20), rng.randrange(0, 20)
    image.paste(color, (x, y, x + 12, y + 12))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_study(root: Path, images: int = 64, arms: int = 2, steps: int = 20) -> Path:
    """The example study as a file of its own, `root`/my_study.py (its first `arms` arms, trained `steps` steps on
    `images` images), with every input it reads in a fixed place, for tests that change one in place
    (tests/test_content_keys.py) and scripts that run a study file (scripts/study_overhead.py): the tiny models in
    weights/, a weights file weights.toml naming only what the study reads, shards/data-00{0,1}.tar, three
    PartiPrompts-format prompts in parti.tsv and two others in validation.tsv."""
    import webdataset as wds

    tiny = tomllib.loads(write_tiny_weights(root / "weights").read_text())
    rng = random.Random(0)
    (root / "shards").mkdir()
    for shard in range(2):
        with wds.TarWriter(str(root / "shards" / f"data-{shard:03d}.tar")) as sink:
            for i in range(images // 2):
                name, shape = rng.choice(list(COLORS)), rng.choice(("circle", "square"))
                sink.write({"__key__": f"{shard * images // 2 + i:06d}", "png": png(COLORS[name], rng), "txt": f"a photo of a {name} {shape}"})
    header, *rows = Path(tiny["benchmarks"]["parti"]).read_text().splitlines()
    (root / "parti.tsv").write_text("\n".join([header, *rows[:3]]) + "\n")
    (root / "validation.tsv").write_text("\n".join([header, *rows[10:12]]) + "\n")
    tables = {"t5": tiny["t5"], "vae": tiny["vae"], **{f"scorers.{name}": tiny["scorers"][name] for name in SCORERS},
              "geneval": tiny["geneval"], "benchmarks": {"parti": root / "parti.tsv", "validation": root / "validation.tsv"}}
    (root / "weights.toml").write_text(render(tables))
    path = root / "my_study.py"
    path.write_text(STUDY.format(example=str(EXAMPLE), data=str(root / "shards"), weights=str(root / "weights.toml"),
                                 images=images, arms=arms, steps=steps))
    return path
