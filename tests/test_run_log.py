"""A run's curves (miro.run_log): log.jsonl and TensorBoard event files read back with TensorBoard's own reader,
resumed without repeats, at a cadence that changes nothing trained; wandb offline only when asked for."""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from core_fixtures import ToyDataset, tiny_config
from miro.checks import check_run_config
from miro.config import RunConfig
from miro.errors import MiroError
from miro.run_log import LOG, TENSORBOARD, log_interval
from miro.train import train

TAGS = {"train/loss", "train/grad_norm", "train/lr", "train/samples_per_s", "train/data_wait"}


def curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """What TensorBoard shows of a run: (step, value) per tag, after its purge of steps a resumed run redid."""
    events = EventAccumulator(str(run_dir / TENSORBOARD))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def logged(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / LOG).read_text().splitlines()]


def test_tensorboard_holds_every_logged_point_of_log_jsonl(tmp_path: Path) -> None:
    train(replace(tiny_config("tokens"), log_every=2), ToyDataset(), tmp_path, progress=False)
    shown, lines = curves(tmp_path), logged(tmp_path)
    assert set(shown) == TAGS and [r["step"] for r in lines] == list(range(2, 21, 2))
    assert shown["train/loss"] == [(r["step"], pytest.approx(r["loss"])) for r in lines]  # float32 in the event file
    assert shown["train/lr"] == [(r["step"], pytest.approx(r["lr"])) for r in lines]


def test_a_resumed_run_shows_each_step_once_and_the_same_curve_as_a_straight_run(tmp_path: Path) -> None:
    cfg = replace(tiny_config("tokens"), log_every=1)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(cfg, ToyDataset(), straight, progress=False)
    train(cfg, ToyDataset(), resumed, stop_at=10, progress=False)
    killed = SummaryWriter(str(resumed / TENSORBOARD))  # a run killed after its checkpoint at 10 wrote steps 11-13
    with (resumed / LOG).open("a") as log:
        for step in (11, 12, 13):
            killed.add_scalar("train/loss", 99.0, step)
            log.write(json.dumps({"step": step, "loss": 99.0}) + "\n")
    killed.close()
    train(cfg, ToyDataset(), resumed, progress=False)  # the same command again
    assert [r["step"] for r in logged(resumed)] == list(range(1, 21))
    # losses are the same computation resumed bitwise; samples/s is a timing and differs
    assert [r["loss"] for r in logged(resumed)] == [r["loss"] for r in logged(straight)]
    shown = curves(resumed)["train/loss"]
    assert [s for s, _ in shown] == list(range(1, 21)) and shown == curves(straight)["train/loss"]


def test_the_default_cadence_is_a_few_hundred_points_and_changes_nothing_trained(tmp_path: Path) -> None:
    cfg = tiny_config("tokens")
    assert RunConfig().log_every == 0 and log_interval(replace(cfg, log_every=0, optim=replace(cfg.optim, steps=100_000))) == 500
    assert log_interval(replace(cfg, log_every=0)) == 1 and log_interval(replace(cfg, log_every=7)) == 7
    sparse, dense = tmp_path / "sparse", tmp_path / "dense"
    train(replace(cfg, log_every=10), ToyDataset(), sparse, progress=False)
    train(replace(cfg, log_every=0), ToyDataset(), dense, progress=False)
    assert len(logged(sparse)) == 2 and len(logged(dense)) == 20
    for name in ("train.safetensors", "ema.safetensors"):
        a, b = (load_file(run / "checkpoints" / "step-0000020" / name) for run in (sparse, dense))
        assert all(torch.equal(a[key], b[key]) for key in a)
    # where curves go is no part of the run: resuming with another cadence is not refused
    train(replace(cfg, log_every=3), ToyDataset(), sparse, progress=False)


def test_wandb_is_offline_unless_wandb_mode_says_otherwise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb", reason="wandb is optional; the test dependency group installs it")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = replace(tiny_config("tokens", steps=4), log_every=1, checkpoint_every=4, wandb="miro-test")
    train(cfg, ToyDataset(), tmp_path / "offline", progress=False)
    (run,) = (tmp_path / "offline" / "wandb").glob("offline-run-*")
    (history,) = run.glob("run-*.wandb")
    deadline = time.monotonic() + 60  # wandb's service process writes the run's file after finish() returns
    while b"train/loss" not in history.read_bytes():
        assert time.monotonic() < deadline, "no train/loss in the offline wandb run"
        time.sleep(0.2)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    train(cfg, ToyDataset(), tmp_path / "disabled", progress=False)
    assert not list((tmp_path / "disabled" / "wandb").glob("*run-*")) and len(logged(tmp_path / "disabled")) == 4


def test_wandb_asked_for_without_the_package_is_refused_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(MiroError, match='wandb = "proj" but the wandb package is not installed: pip install wandb'):
        check_run_config(replace(RunConfig(), wandb="proj"))
