"""The example study (examples/my_study.py), run by docs/your-study.md's commands (tests/real_study.py), end to end on
the local executor: 64 images as webdataset shards, annotated by three real scorers as an array of shards, assembled and binned, the VAE latents
and T5 features precomputed as another array, a baseline and MIRO trained on the precomputed features, each
evaluated at two checkpoints on a few GenEval rows (Mask2Former and the colour classifier) and PartiPrompts rows
with four real scorers, MIRO's sampler tuned on validation prompts, and the report written with the real
scorers' columns and GenEval per task (tests/slurm/test_slurm_study.py runs the same study on SLURM with the
generation sharded as arrays).

The sweep runner is killed with SIGKILL once a training unit is done, and the same command is run again: it
finishes the study without recomputing any unit that was done (the units the dead runner had started finish in
their own processes and are watched, not submitted again).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from guides import run, try_it
from real_study import CORRUPT, GENEVAL_TASKS, SCORERS, SWEEP, write_inputs

from harness.store import Store
from harness.sweep import main


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("real")


@pytest.fixture(scope="module")
def study_args(inputs) -> list[str]:
    return write_inputs(inputs)

def done_units(store: Store) -> dict[str, str]:
    return {key: status.kind for key, status in store.status().items() if status.state == "done"}


@pytest.fixture(scope="module")
def interrupted(study_args, inputs) -> tuple[Path, dict[str, str]]:
    """The study's root after a runner killed half-way and a second run; and the units done at the kill."""
    root = inputs / "runs"  # where the guide's commands put it
    root.mkdir()
    # one generation shard per evaluation here (the SLURM test runs them as arrays): fewer processes to start
    command = [*study_args, "--root", str(root), "--max-parallel", "2", "--set", "evaluation.parti.shards=1",
               "--set", "evaluation.geneval.shards=1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    log = root / "runner.log"
    with log.open("w") as sink:
        runner = subprocess.Popen([sys.executable, "-m", "harness.sweep", *command], env=env, stdout=sink, stderr=sink)
    store, deadline = Store(root / "store"), time.monotonic() + 600
    while "train" not in done_units(store).values() and runner.poll() is None and time.monotonic() < deadline:
        time.sleep(1)
    assert runner.poll() is None, f"the runner ended before it could be killed half-way:\n{log.read_text()[-3000:]}"
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    before = done_units(store)
    main(command)
    return root, before


@pytest.fixture(scope="module")
def finished(interrupted) -> Path:
    return interrupted[0]


UNITS = 2 + 1 + 2 + 2 + 1 + 2 * 2 * 2  # annotation shards + assembly, precompute shards, trainings, tuning, arm x step x suite


def test_every_stage_runs_as_units_and_the_report_has_the_real_scorers(finished):
    sweep_dir = finished / "sweeps" / SWEEP
    record = json.loads((sweep_dir / "sweep.json").read_text())
    assert record["finished_units"] == record["expected_units"] == UNITS
    metrics = pd.read_parquet(sweep_dir / "results" / "metrics.parquet")
    assert set(SCORERS) <= set(metrics["metric"]) and set(metrics["step"]) == {10, 20}
    assert set(metrics["arm"]) == {"baseline", "miro"}
    geneval = metrics[metrics["metric"] == "geneval"]
    assert geneval["tag"].nunique() == GENEVAL_TASKS and set(geneval["value"]) <= {0.0, 1.0}  # a verdict per image, per task
    report = (sweep_dir / "report.html").read_text()
    assert all(name in report for name in SCORERS) and "geneval" in report.lower()
    assert "2 arms: the no-reward baseline and MIRO on 3 rewards (pickscore, sciscore, hpsv2)." in report
    for stage in ("annotation: samples without a usable score", "precompute: unreadable samples"):  # counted and named
        assert re.search(rf"{stage}</dt><dd>1 of 64 \(sample {CORRUPT}: [^)]*unreadable image", report), stage
    assert "1 unreadable (every scorer failed)" in report  # and training left it out
    store = Store(finished / "store")
    kinds = [status.kind for status in store.status().values()]
    assert sorted(set(kinds)) == ["annotate", "assemble", "evaluate", "precompute", "train", "tune"]
    assert kinds.count("annotate") == kinds.count("precompute") == 2
    trained = [key for key, status in store.status().items() if status.kind == "train"]
    waited = {store.inputs(k)["kind"] for key in trained for k in store.inputs(key)["inputs"]["data"]}
    assert waited == {"assemble", "precompute"}  # every training waited for the bins and the features ...
    for key in trained:  # ... and read the precomputed features instead of running T5 and the VAE
        features = json.loads((store.work_dir(key) / "run" / "config.json").read_text())["data"]["features"]
        assert (Path(features) / "latent_stats.json").is_file() and Path(features).parent.name == "features"


def test_a_rerun_after_sigkill_recomputes_no_finished_unit(interrupted):
    root, before = interrupted
    store = Store(root / "store")
    assert "train" in before.values() and len(before) < UNITS
    for key in before:
        events = (store.unit_dir(key) / "events.jsonl").read_text()
        assert store.attempts(key) == 1 and events.count('"running"') == 1, key
    assert set(done_units(store)) >= set(before) and len(done_units(store)) == UNITS


def test_the_report_guide_rebuilds_the_report_from_stored_results(finished):
    """docs/report.md's commands, run after docs/your-study.md's sweep: a rebuild reads results and retrains nothing."""
    store = Store(finished / "store")
    before = {key: store.attempts(key) for key in store.status()}
    out = run(try_it("report"), finished.parent)
    assert f"runs/sweeps/{SWEEP}/report.html" in out and {key: store.attempts(key) for key in store.status()} == before
