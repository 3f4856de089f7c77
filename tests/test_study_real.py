"""A study on the real-data path, end to end on the local executor: 64 images as webdataset shards, annotated by
three real scorers (tiny random transformers CLIP folders in the real file format) as an array of shards,
assembled and binned, a baseline and MIRO trained on them, each evaluated at two checkpoints on a few
PartiPrompts rows with generation sharded, and the report written with the real scorers' columns.

The sweep runner is killed with SIGKILL once a training unit is done, and the same command is run again: it
finishes the study without recomputing any unit that was done (the units the dead runner had started finish in
their own processes and are watched, not submitted again).
"""
from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from rewards_real.tiny_hf_clip import write_model, write_processor

from harness.store import Store
from harness.sweep import main

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


@pytest.fixture(scope="module")
def study_file(tmp_path_factory) -> Path:
    import webdataset as wds

    if not PARTI.is_file():
        pytest.skip(f"PartiPrompts not found at {PARTI}")
    root = tmp_path_factory.mktemp("real")
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


def done_units(store: Store) -> dict[str, str]:
    return {key: status.kind for key, status in store.status().items() if status.state == "done"}


@pytest.fixture(scope="module")
def interrupted(study_file, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The study's root after a runner killed half-way and a second run; and the units done at the kill."""
    root = tmp_path_factory.mktemp("runs")
    command = [str(study_file), "--root", str(root), "--max-parallel", "2"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    runner = subprocess.Popen([sys.executable, "-m", "harness.sweep", *command], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    store, deadline = Store(root / "store"), time.monotonic() + 600
    while "train" not in done_units(store).values() and runner.poll() is None and time.monotonic() < deadline:
        time.sleep(1)
    assert runner.poll() is None, "the runner ended before it could be killed half-way"
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    before = done_units(store)
    main(command)
    return root, before


@pytest.fixture(scope="module")
def finished(interrupted) -> Path:
    return interrupted[0]


def test_every_stage_runs_as_units_and_the_report_has_the_real_scorers(finished):
    sweep_dir = finished / "sweeps" / "real-tiny"
    record = json.loads((sweep_dir / "sweep.json").read_text())
    # 2 annotation shards + assembly, 2 trainings, per arm x step 2 generation shards + 1 evaluation
    assert record["finished_units"] == record["expected_units"] == 2 + 1 + 2 + 4 * 3
    metrics = pd.read_parquet(sweep_dir / "results" / "metrics.parquet")
    assert set(SCORERS) <= set(metrics["metric"]) and set(metrics["step"]) == {10, 20}
    assert set(metrics["arm"]) == {"baseline", "miro"} and metrics["prompt_id"].nunique() == 3
    assert (sweep_dir / "report.html").is_file() and "pickscore" in (sweep_dir / "report.html").read_text()
    kinds = [status.kind for status in Store(finished / "store").status().values()]
    assert sorted(set(kinds)) == ["annotate", "assemble", "evaluate", "generate", "train"] and kinds.count("annotate") == 2


def test_a_rerun_after_sigkill_recomputes_no_finished_unit(interrupted):
    root, before = interrupted
    store = Store(root / "store")
    assert "train" in before.values() and len(before) < 17
    for key in before:
        events = (store.unit_dir(key) / "events.jsonl").read_text()
        assert store.attempts(key) == 1 and events.count('"running"') == 1, key
    assert set(done_units(store)) >= set(before) and len(done_units(store)) == 17
