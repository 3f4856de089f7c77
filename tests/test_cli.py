"""The method's command line on the shapes world: prepare data once, train, resume, sample."""
import json

import pytest

from miro.__main__ import main
from miro.data.build import build_training_set, data_key
from miro.presets import smoke


def test_train_then_rerun_then_sample(tmp_path, capsys):
    run, data = tmp_path / "run", tmp_path / "data"
    args = ["train", "--preset", "smoke", "--out", str(run), "--data-root", str(data), "--set", "optim.steps=6"]
    main(args)
    assert capsys.readouterr().out.strip().endswith("step-0000006")
    main(args)  # the same command again: nothing left to do
    assert capsys.readouterr().out.strip().endswith("step-0000006")
    grid = tmp_path / "grid.png"
    main(["sample", str(run), "--caption", "a photo of a red circle", "--samples", "2", "--out", str(grid),
          "--target", "shapes_quality=0.5"])
    assert grid.is_file() and "'shapes_quality': 0.5" in capsys.readouterr().out


def test_bad_override_and_bad_target_exit_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--out", str(tmp_path / "r"), "--set", "optim.step=3"])
    assert 'did you mean "steps"' in capsys.readouterr().err


def test_dry_run_prints_the_resolved_config(tmp_path, capsys):
    main(["train", "--out", str(tmp_path), "--dry-run", "--set", "rewards.scheme=adaln"])
    assert json.loads(capsys.readouterr().out)["rewards"]["scheme"] == "adaln"


def test_shapes_data_is_prepared_once_and_shared_by_arms(tmp_path):
    cfg = smoke()
    first = build_training_set(cfg, tmp_path, progress=False)
    folder = tmp_path / data_key(cfg.data)
    stamp = (folder / "annotations.parquet").stat().st_mtime_ns
    from dataclasses import replace
    only_size = replace(cfg, rewards=replace(cfg.rewards, names=("shapes_size",)))
    second = build_training_set(only_size, tmp_path, progress=False)
    assert (folder / "annotations.parquet").stat().st_mtime_ns == stamp
    assert len(first) == len(second)  # same samples for every arm
    assert first.rewards.shape[1] == 3 and second.rewards.shape[1] == 1
    assert (first.rewards[:, 2] == second.rewards[:, 0]).all()  # same bins
    assert 0 <= float(first.rewards.min()) and float(first.rewards.max()) <= 1


def test_annotate_prints_statistics_and_correlations_and_resumes(tmp_path, capsys):
    out = tmp_path / "annotation"
    main(["annotate", "--samples", "64", "--out", str(out), "--batch-size", "32"])
    assert (out / "annotations.parquet").is_file() and (out / "shard-00000-of-00001.parquet").is_file()
    first = capsys.readouterr()
    assert "annotated 64 samples" in first.err and "correlations" in first.out and "shapes_quality" in first.out
    main(["annotate", "--samples", "64", "--out", str(out)])
    assert "annotated 0 samples (64 already done)" in capsys.readouterr().err


def test_annotate_folder_needs_a_path(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["annotate", "--source", "folder", "--out", str(tmp_path / "a")])
    assert "--path is required for --source folder" in capsys.readouterr().err
