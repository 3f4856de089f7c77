"""The input contract: what loads, what a partial sweep says, and the one-line errors for broken files."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from synthetic_sweep import LAST_STEP, PARTIAL_ARM, write_synthetic_sweep

from miro.errors import MiroError
from reports.results import load


def copy(sweep_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(sweep_dir, tmp_path / "sweep"))


def test_loads_every_file_and_names_what_is_missing(sweep_dir: Path) -> None:
    results = load(sweep_dir)
    assert [a.name for a in results.spec.arms][:2] == ["baseline", "miro"]
    assert results.spec.reference == "baseline"
    assert results.spec.arm("miro").training_rewards == ("shapes_alignment", "shapes_quality", "shapes_size")
    assert results.diversity is not None and results.controllability is not None and results.best_of_n is not None
    assert results.pareto is not None and len(results.failures) == 3 and len(results.grids) == 5
    assert any(PARTIAL_ARM in note and f"step {LAST_STEP}" in note for note in results.missing)
    assert any("units finished" in note for note in results.missing)
    assert results.absent == []


def test_directions_follow_the_contract(sweep_dir: Path) -> None:
    spec = load(sweep_dir).spec
    assert spec.direction("shapes_quality") == 1
    assert spec.direction("fid") == -1  # always lower-is-better
    assert spec.direction("objects_per_single_object_prompt") == 0


def test_a_sweep_without_results_still_loads(tmp_path: Path) -> None:
    root = write_synthetic_sweep(tmp_path / "s", prompts=6, samples=1, optional=False)
    (root / "results" / "metrics.parquet").unlink()
    results = load(root)
    assert results.metrics.empty
    assert any("metrics.parquet is missing" in note for note in results.missing)
    assert any("diversity" in note for note in results.absent)


def test_units_left_out_by_the_sweep_are_named_in_the_notes(sweep_dir: Path, tmp_path: Path) -> None:
    root = copy(sweep_dir, tmp_path)
    spec = json.loads((root / "sweep.json").read_text())
    note = "evaluate shapes a seed 0 step 20 (unit evaluate-1): results left out: images.jsonl is missing; rerun the sweep with --retry"
    (root / "sweep.json").write_text(json.dumps({**spec, "notes": [note]}))
    assert note in load(root).missing


def test_nan_values_are_dropped_and_counted(sweep_dir: Path, tmp_path: Path) -> None:
    root = copy(sweep_dir, tmp_path)
    path = root / "results" / "metrics.parquet"
    frame = pd.read_parquet(path)
    frame.loc[:4, "value"] = float("nan")
    frame.to_parquet(path)
    results = load(root)
    assert len(results.metrics) == len(frame) - 5
    assert any("5 values in metrics.parquet are NaN" in note for note in results.missing)


@pytest.mark.parametrize("breakage, message", [
    (lambda r: (r / "sweep.json").unlink(), "sweep.json not found"),
    (lambda r: (r / "sweep.json").write_text("{not json"), "is not valid JSON"),
    (lambda r: (r / "sweep.json").write_text(json.dumps({**json.loads((r / "sweep.json").read_text()), "arms": "x"})),
     "'arms' must be list"),
    (lambda r: (r / "results" / "metrics.parquet").write_bytes(b"PAR1 truncated"), "not a readable parquet file"),
    (lambda r: pd.read_parquet(r / "results" / "metrics.parquet").drop(columns="tag").to_parquet(r / "results" / "metrics.parquet"),
     "lacks the columns ['tag']"),
    (lambda r: pd.read_parquet(r / "results" / "metrics.parquet").assign(arm="ghost").to_parquet(r / "results" / "metrics.parquet"),
     "arms ['ghost'] that sweep.json does not declare"),
    (lambda r: (r / "results" / "geneval_failures.jsonl").write_text('{"arm": "miro"}\n'), "geneval_failures.jsonl:1 must be"),
    (lambda r: (r / "results" / "grids" / "miro.png").write_text("not an image"), "miro.png is not a PNG"),
    (lambda r: (r / "results" / "data_correlations.csv").write_text("reward,pearson\nshapes_quality,0.5\n"),
     "data_correlations.csv lacks the columns ['data', 'factor', 'n_samples']"),
    (lambda r: (r / "results" / "data_correlations.csv").write_text("data,reward,factor,n_samples,pearson\nd,q,blur,many,0.5\n"),
     "data_correlations.csv has a column of the wrong type"),
    (lambda r: (r / "results" / "shape_confusion.csv").write_text("arm,prompted,read\nmiro,circle,square\n"),
     "shape_confusion.csv lacks the columns ['seed', 'step', 'images']"),
])
def test_a_broken_file_gives_one_line_naming_it_and_the_fix(sweep_dir: Path, tmp_path: Path, breakage, message: str) -> None:
    root = copy(sweep_dir, tmp_path)
    breakage(root)
    with pytest.raises(MiroError, match=re.escape(message)) as err:
        load(root)
    text = str(err.value)
    assert "\n" not in text
    assert "run the same sweep command again" in text or "nox -s sweep" in text


def test_a_baseline_that_is_not_an_arm_is_refused(sweep_dir: Path, tmp_path: Path) -> None:
    root = copy(sweep_dir, tmp_path)
    spec = json.loads((root / "sweep.json").read_text())
    spec["arms"][1]["baseline"] = "basline"
    (root / "sweep.json").write_text(json.dumps(spec))
    with pytest.raises(MiroError, match='did you mean "baseline"'):
        load(root)
