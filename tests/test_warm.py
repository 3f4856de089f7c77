"""Models a warm worker keeps (miro.warm): the same arguments and unchanged files give the model built before; a
changed weight file, or other arguments, build afresh; outside a warm worker every call builds."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import miro.warm
from miro.config import LatentConfig
from miro.rewards.registry import load_scorer
from miro.warm import kept

BUILT: list[tuple] = []


@kept
def build(path: str, config: LatentConfig) -> object:
    BUILT.append((path, config))
    return object()


def test_a_warm_worker_keeps_a_model_until_its_file_or_its_arguments_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = tmp_path / "vae"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"weights")
    assert build(str(weights), LatentConfig()) is not build(str(weights), LatentConfig())  # a fresh process: no cache
    monkeypatch.setattr(miro.warm, "_KEPT", {})
    monkeypatch.setattr(miro.warm, "_KEEPING", [False])  # what keep_models sets is undone after the test
    miro.warm.keep_models()
    first = build(str(weights), LatentConfig())
    assert build(str(weights), LatentConfig()) is first
    assert build(str(weights), LatentConfig(scaling_factor=0.5)) is not first
    (weights / "model.safetensors").write_bytes(b"other weights")  # replaced on disk
    os.utime(weights / "model.safetensors", ns=(1, 1))
    assert build(str(weights), LatentConfig()) is not first
    assert load_scorer("shapes_quality") is load_scorer("shapes_quality")  # the registry's scorers are kept too
