"""A tiny checkpoint trained for a few steps on the shapes world (a session fixture: trained once)."""
from __future__ import annotations

from pathlib import Path

import pytest

from miro.inference import Generator, load_generator
from miro.train import train

from .helpers import RewardedShapes, tiny_shapes_config


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-shapes-run")
    train(tiny_shapes_config(), RewardedShapes(), path, progress=False)
    return path


@pytest.fixture(scope="session")
def generator(run_dir: Path) -> Generator:
    return load_generator(run_dir)
