"""A small stored sweep (the default sweep's 8 arms, 2 seeds, 3 steps, one arm stopped early) and its
report, built once per session so the report tests share one rebuild."""
from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_sweep import PARTIAL_ARM, write_synthetic_sweep

from reports.build import Built, build_report


@pytest.fixture(scope="session")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_sweep(tmp_path_factory.mktemp("sweep"), prompts=36, samples=2, drop_arms=(PARTIAL_ARM,))


@pytest.fixture(scope="session")
def built(sweep_dir: Path) -> Built:
    return build_report(sweep_dir)
