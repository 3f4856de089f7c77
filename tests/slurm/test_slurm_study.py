"""The example study (examples/my_study.py, inputs as tests/real_study.py makes them) on the project's single-node SLURM: annotation, precomputation and
generation run as job arrays, every stage as its own jobs, and the report is written with the real scorers' columns."""
from __future__ import annotations

import json

import pandas as pd
from real_study import SCORERS, SWEEP, write_inputs

from harness.store import Store
from harness.sweep import main


def test_the_real_data_study_runs_on_slurm_with_arrays(tmp_path):
    study = write_inputs(tmp_path / "inputs")
    root = tmp_path / "runs"
    main([*study, "--root", str(root), "--executor", "slurm", "--poll-s", "1", "--max-parallel", "16",
          "--time-min", "10", "--set", "eval_steps=[20]"])
    record = json.loads((root / "sweeps" / SWEEP / "sweep.json").read_text())
    # annotation shards + assembly, precompute shards, trainings, tuning, per arm x suite an evaluation and 2 generation shards
    assert record["finished_units"] == record["expected_units"] == 2 + 1 + 2 + 2 + 1 + 2 * 2 * 3
    metrics = pd.read_parquet(root / "sweeps" / SWEEP / "results" / "metrics.parquet")
    assert set(SCORERS) <= set(metrics["metric"]) and set(metrics["arm"]) == {"baseline", "miro"}
    store = Store(root / "store")
    jobs: dict[str, set[str]] = {}
    for key, status in store.status().items():
        job = str(store.record(key).get("job_id", ""))
        jobs.setdefault(status.kind, set()).add(job.split("_")[0])
    assert all("_" in str(store.record(k).get("job_id")) for k, s in store.status().items() if s.kind in ("annotate", "precompute", "generate"))
    assert len(jobs["annotate"]) == len(jobs["precompute"]) == 1  # both shards of each in one array job
