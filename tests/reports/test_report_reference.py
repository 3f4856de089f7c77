"""The paper's numbers in reports/data: matched by arm and metric only, and equal to the published tables."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from reports import reference

PUBLISHED = Path(__file__).resolve().parents[3] / "shared" / "reference"


def test_rows_match_arms_and_metrics_only() -> None:
    rows = reference.arm_rows(["baseline", "miro", "only-aesthetic", "only-size"], ["geneval", "aesthetic", "shapes_quality"])
    assert list(rows["arm"]) == ["baseline", "miro", "only-aesthetic"]
    assert list(rows.columns) == ["arm", "label", "table", "geneval", "aesthetic"]
    assert rows.set_index("arm").loc["baseline", "geneval"] == pytest.approx(0.52)
    assert reference.arm_rows(["only-size"], ["geneval"]).empty


def test_curves_and_speedups_where_published() -> None:
    assert reference.best_of_n("miro", "aesthetic").iloc[0].tolist() == pytest.approx([1, 6.389])
    assert reference.best_of_n("only-size", "aesthetic") is None
    assert len(reference.target_sweep("aesthetic", "geneval")) == 9 and reference.target_sweep("hpsv2", "hpsv2") is None
    assert reference.speedups()["aesthetic"] == pytest.approx(19.1)
    assert set(reference.sources().files) == {p.name for p in reference.DATA.glob("*.csv")}


def test_copied_numbers_equal_the_published_tables() -> None:
    if not (PUBLISHED / "miro_paper_table1.csv").is_file():
        pytest.skip(f"published tables not found at {PUBLISHED}")
    table1 = pd.read_csv(PUBLISHED / "miro_paper_table1.csv").set_index("model")
    ours = pd.read_csv(reference.DATA / "paper_arms.csv").set_index("label")
    for label in ("Baseline", "MIRO", "Aesthetic-only"):
        assert ours.loc[label, "geneval"] * 100 == pytest.approx(table1.loc[label, "geneval_overall"])
        assert ours.loc[label, "geneval[position]"] * 100 == pytest.approx(table1.loc[label, "position"])
        assert ours.loc[label, "pickscore"] / 100 == pytest.approx(table1.loc[label, "pickscore"])
