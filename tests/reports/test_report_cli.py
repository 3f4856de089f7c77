"""`python -m reports <sweep dir> [--out]`: writes the report, or prints one line saying what to fix."""
from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_sweep import write_synthetic_sweep

from reports.__main__ import main


def test_cli_writes_the_report_and_its_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_synthetic_sweep(tmp_path / "sweep", prompts=12, samples=1, seeds=(0,), optional=False)
    assert main([str(root), "--out", str(tmp_path / "out" / "r.html")]) == 0
    assert (tmp_path / "out" / "r.html").is_file() and (tmp_path / "out" / "r_tables" / "main_table.csv").is_file()
    assert "wrote" in capsys.readouterr().out


def test_cli_names_a_missing_sweep_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main([str(tmp_path / "nowhere")])
    assert exit.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "sweep.json not found" in err and "\n" not in err


def test_a_rebuild_with_fewer_results_is_written_beside_the_finished_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_synthetic_sweep(tmp_path / "sweep", prompts=12, samples=1, seeds=(0,), optional=False)
    assert main([str(root)]) == 0
    finished = (root / "report.html").read_bytes()
    (root / "results").rename(tmp_path / "moved")  # results/ missing: the rebuild would say "no evaluation results yet"
    capsys.readouterr()
    assert main([str(root)]) == 0
    out = capsys.readouterr().out
    assert (root / "report.html").read_bytes() == finished
    assert f"kept {root / 'report.html'}" in out and "no evaluation results yet" in out
    assert (root / "report.partial.html").is_file() and (root / "report.partial_tables" / "estimates.csv").is_file()
    (tmp_path / "moved").rename(root / "results")
    assert main([str(root)]) == 0 and "kept" not in capsys.readouterr().out  # the full results replace it again
