"""The README stays short and keeps its two commands, and every guide's closing commands run as written
(tests/guides.py): docs/your-study.md's and docs/report.md's in tests/test_study_real.py, beside the example study
they run; every other guide's here, each in a fresh folder that already holds the tiny weights and example data."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from guides import DOCS, ROOT, run, try_it

RUN_ELSEWHERE = {"your-study": "tests/test_study_real.py", "report": "tests/test_study_real.py"}
GUIDES = sorted(p.stem for p in DOCS.glob("*.md") if "\n## Try it\n" in p.read_text() and p.stem not in RUN_ELSEWHERE)


def test_the_readme_is_short_and_keeps_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    assert len(readme) <= 150
    for command in ("python3 -m pip install nox && python3 -m nox -s sweep", "python3 -m pip install nox && python3 -m nox -s tests"):
        assert f"    {command}" in readme


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """The tiny weights and the example data every guide starts from, made once (the same commands keep them)."""
    folder = tmp_path_factory.mktemp("prepared")
    run(["python -m miro weights tiny tiny-weights", "python -m miro example-data example-data"], folder)
    return folder


@pytest.mark.parametrize("guide", GUIDES)
def test_a_guide_ends_with_commands_that_run(guide: str, prepared: Path, tmp_path: Path) -> None:
    if guide == "slurm" and shutil.which("sbatch") is None:
        pytest.skip("no SLURM here (bash scripts/slurm/start.sh)")
    for name in ("tiny-weights", "example-data"):
        (tmp_path / name).symlink_to(prepared / name)
    run(try_it(guide), tmp_path)


def test_the_guides_run_elsewhere_are_run_there() -> None:
    for guide, test in RUN_ELSEWHERE.items():
        assert try_it(guide) and f'try_it("{guide}")' in (ROOT / test).read_text() + (ROOT / "tests" / "real_study.py").read_text()
