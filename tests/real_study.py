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
import shlex
import tarfile
from pathlib import Path

from guides import ROOT, run, try_it

from miro.tiny.data import write_example_data
from miro.tiny.weights import write_tiny_weights

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


def write_study(root: Path, images: int = 64, arms: int = 2, steps: int = 20) -> Path:
    """The example study as a file of its own under `root` (its inputs beside it): `images` in two shards, the first
    `arms` arms, trained `steps` steps; for scripts that run a study file with no --data or --weights
    (scripts/study_overhead.py)."""
    weights = write_tiny_weights(root / "tiny-weights")
    data = write_example_data(root / "example-data", samples=images)
    path = root / "my_study.py"
    path.write_text(STUDY.format(example=str(EXAMPLE), data=str(data), weights=str(weights), images=images, arms=arms, steps=steps))
    return path
