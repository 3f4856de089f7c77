"""A whole evaluation of a trained tiny shapes checkpoint: outputs, roles, resume, shards, sweeps, the CLI."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.evaluation import run as run_module
from harness.evaluation.__main__ import main
from harness.evaluation.modes import TargetSweep
from harness.evaluation.roles import HELD_OUT, TRAINED
from harness.evaluation.run import evaluate, evaluate_sweep
from harness.geneval.evaluate import read_results
from miro.errors import MiroError

from .helpers import quick_options
from .test_prompts import PARTI


@pytest.fixture(scope="module")
def evaluated(generator, tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluation")
    return out, evaluate(generator, out, quick_options(best_of_n="shapes_quality"), progress=False)


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "images.jsonl").read_text().splitlines()]


def test_an_evaluation_writes_rows_and_a_summary_with_every_metric(evaluated):
    out, summary = evaluated
    assert json.loads((out / "summary.json").read_text())["metrics"] == json.loads(json.dumps(summary["metrics"]))
    metrics = summary["metrics"]
    assert {"shapes_alignment", "shapes_quality", "shapes_size", "geneval", "diversity.vendi", "fid", "kid"} <= metrics.keys()
    table = rows(out)
    assert len(table) == 12 and {"seed", "prompt", "file", "shapes_quality", "geneval_correct"} <= table[0].keys()
    assert len(read_results(out / "geneval.jsonl")) == 12  # also readable by GenEval's summary tool
    assert 0 <= metrics["geneval"]["value"] <= 1 and len(metrics["geneval"]["task_scores"]) == 6  # --limit 6 takes one prompt per task
    assert 0 <= metrics["geneval"]["shape_agnostic"]["value"] <= 1 and "geneval_shape_agnostic" in table[0]
    assert "geneval_shape_read" in table[0] and metrics["geneval"]["shape_read"].keys() == {"value", "low", "high", "level"}
    assert metrics["shapes_quality"]["fingerprint"] and metrics["fid"]["n_generated"] == 12
    assert summary["guidance"]["miro_cfg_rate_w"] == summary["guidance"]["g"] - 1
    assert {"git", "packages", "device", "conventions"} <= summary["manifest"].keys()
    assert summary["throughput"]["images_per_s"] > 0


def test_a_reward_the_model_was_conditioned_on_is_never_held_out(evaluated):
    out, summary = evaluated
    roles = {name: m["role"] for name, m in summary["metrics"].items()}
    assert roles["shapes_quality"] == roles["shapes_size"] == TRAINED
    assert roles["shapes_alignment"] == roles["geneval"] == roles["fid"] == HELD_OUT
    best = json.loads((out / "best_of_n.json").read_text())
    assert best["select_by_role"] == TRAINED and best["curves"]["geneval_correct"]["role"] == HELD_OUT
    assert best["curves"]["shapes_quality"]["ns"] == [1, 2]


def test_running_again_resumes_without_redoing_anything(generator, evaluated):
    out, first = evaluated
    again = evaluate(generator, out, quick_options(best_of_n="shapes_quality"), progress=False)
    assert again["throughput"]["generated"] == again["throughput"]["scored"] == 0
    assert again["metrics"]["shapes_quality"] == first["metrics"]["shapes_quality"]
    assert again["metrics"]["geneval"]["value"] == first["metrics"]["geneval"]["value"]


def test_a_non_finite_metric_fails_the_evaluation_and_writes_no_summary(generator, evaluated, tmp_path, monkeypatch):
    out = shutil.copytree(evaluated[0], tmp_path / "evaluation")
    before = (out / "summary.json").read_text()
    real = run_module.scorer_metrics
    monkeypatch.setattr(run_module, "scorer_metrics", lambda *a: {**real(*a), "shapes_quality": {"value": float("nan")}})
    with pytest.raises(MiroError, match=r"^evaluation metric shapes_quality.value is nan, not a finite number; no summary written"):
        evaluate(generator, out, quick_options(best_of_n="shapes_quality"), progress=False)
    assert (out / "summary.json").read_text() == before


def test_a_target_sweep_evaluates_each_value_in_its_own_folder(generator, tmp_path):
    options = quick_options(limit=2, features="", reference="")
    table = evaluate_sweep(generator, tmp_path, options, TargetSweep("shapes_quality", (0.0, 1.0)), progress=False)
    assert (tmp_path / "sweep-shapes_quality-0" / "summary.json").is_file()
    assert table["metrics"]["shapes_quality"]["role"] == TRAINED and len(table["metrics"]["shapes_quality"]["value"]) == 2
    assert json.loads((tmp_path / "sweep.json").read_text()) == json.loads(json.dumps(table))
    settings = json.loads((tmp_path / "sweep-shapes_quality-1" / "images" / "generation.json").read_text())
    assert settings["sample"]["positive_targets"] == {"shapes_quality": 1.0, "shapes_size": 1.0}


def test_partiprompts_get_reward_means_without_geneval(generator, tmp_path):
    if not PARTI.is_file():
        pytest.skip(f"PartiPrompts not found at {PARTI}")
    options = quick_options(prompts=str(PARTI), limit=3, scorers=("shapes_quality",), reference="")
    summary = evaluate(generator, tmp_path, options, progress=False)
    assert set(summary["metrics"]) == {"shapes_quality", "diversity.pairwise_distance", "diversity.vendi"}
    assert json.loads((tmp_path / "images" / "00000" / "metadata.jsonl").read_text())["prompt"] == "bond"


def cli(run_dir: Path, out: Path, *extra: str) -> int:
    """The command's exit status (0 on success; a refused input exits 2)."""
    try:
        return main(["--checkpoint", str(run_dir), "--out", str(out), "--limit", "3", "--samples", "2", "--steps", "2",
                     "--positive", "all=1", "--negative", "all=0", "--reference-size", "32", "--no-progress", *extra])
    except SystemExit as exit:
        return int(exit.code)


def test_the_command_line_evaluates_shards_then_finishes(run_dir, tmp_path, capsys):
    assert cli(run_dir, tmp_path, "--shard", "0/2") == 0 and cli(run_dir, tmp_path, "--shard", "1/2") == 0
    assert len(list((tmp_path / "images").rglob("*.png"))) == 6 and not (tmp_path / "summary.json").exists()
    capsys.readouterr()
    assert cli(run_dir, tmp_path) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["throughput"]["generated"] == 0 and printed["throughput"]["scored"] == 0
    assert printed["metrics"]["shapes_size"]["role"] == TRAINED
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["guidance"]["positive"] == {"shapes_quality": 1.0, "shapes_size": 1.0}


def test_the_command_line_refuses_bad_input_in_one_line(run_dir, tmp_path, capsys):
    assert cli(run_dir, tmp_path, "--positive", "shapes_qualty=1") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'did you mean "shapes_quality"' in err
    assert cli(run_dir, tmp_path, "--scorers", "shapes_sise") == 2
    assert "unknown scorer" in capsys.readouterr().err
    assert cli(run_dir, tmp_path, "--best-of-n", "shapes_qualty") == 2
    assert 'unknown best-of-N selection scorer "shapes_qualty"' in capsys.readouterr().err
    assert not (tmp_path / "images").exists()  # refused before any image was made
    assert cli(run_dir, tmp_path, "--dry-run") == 0
    assert json.loads(capsys.readouterr().out)["options"]["generation"]["samples_per_prompt"] == 2


def test_the_command_line_sweeps_a_reward_target(run_dir, tmp_path, capsys):
    assert cli(run_dir, tmp_path, "--sweep", "shapes_size", "--sweep-values", "0", "1", "--features", "none", "--reference", "none") == 0
    table = json.loads(capsys.readouterr().out)
    assert table["targets"] == [0.0, 1.0] and table["metrics"]["shapes_size"]["role"] == TRAINED
    assert cli(run_dir, tmp_path / "x", "--features", "none") == 2
    assert "FID/KID need features" in capsys.readouterr().err
