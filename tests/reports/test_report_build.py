"""The report built from a small stored sweep: self-contained, one row per arm, held-out evidence apart from
trained rewards, every table exported, partial and empty sweeps rendered with what is missing."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
from synthetic_sweep import LAST_STEP, PARTIAL_ARM, write_synthetic_sweep

from reports.build import Built, build_report

REBUILD_BUDGET_S = 60  # generous for a shared 2-core machine; about 3 s here


class MainTableCells(HTMLParser):
    """Per arm row of the main table: the class attribute of each metric cell."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self.arm: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr":
            self.arm = found.get("data-arm")
            if self.arm:
                self.rows[self.arm] = []
        elif tag == "td" and self.arm:
            self.rows[self.arm].append(found.get("class") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self.arm = None


def cells(html: str) -> dict[str, list[str]]:
    parser = MainTableCells()
    parser.feed(html)
    return parser.rows


def test_the_report_is_one_offline_file(built: Built) -> None:
    html = built.html.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', html), "the report must not load anything from a network"
    assert "<link" not in html and "<script src" not in html
    sources = re.findall(r'<img src="([^"]{0,30})', html)
    assert sources and all(s.startswith(("data:image/svg+xml;base64,", "data:image/png;base64,")) for s in sources)
    for key in ("radar", "curves", "geneval-heatmap", "controllability", "best-of-n", "pareto"):
        assert f'id="fig-{key}"' in html
    assert built.seconds < REBUILD_BUDGET_S


def test_main_table_has_one_row_per_arm_and_shades_trained_rewards(built: Built) -> None:
    rows = cells(built.html.read_text())
    assert list(rows) == ["baseline", "miro", "only-alignment", "only-quality", "only-size"]
    assert sum("trained" in c for c in rows["baseline"]) == 0
    assert sum("trained" in c for c in rows["miro"]) == 3
    assert sum("trained" in c for c in rows["only-quality"]) == 1
    columns = list(zip(*rows.values()))
    undirected = 1  # objects_per_single_object_prompt: 1 is ideal, so no column best
    assert sum(any("best" in c for c in column) for column in columns) == len(columns) - undirected


def test_summary_says_what_is_missing_and_what_was_run(built: Built) -> None:
    html = built.html.read_text()
    assert 'id="missing"' in html and f"arm {PARTIAL_ARM}: no results for seed 0 step {LAST_STEP}" in html
    assert "rewards.scheme: none → tokens" in html
    assert "g = 4 (MIRO cfg_rate w = 3)" in html
    assert "0123456789abcdef0123456789abcdef01234567 (clean)" in html
    assert "paper: Baseline" in html and "paper: MIRO" in html
    assert f"miro vs baseline (step {LAST_STEP}" in html


def test_every_table_is_exported_as_csv_and_json(built: Built) -> None:
    names = {p.stem for p in built.tables.glob("*.csv")}
    assert {"main_table", "estimates", "comparisons", "speedups", "curves", "controllability", "best_of_n", "pareto",
            "geneval_tasks", "arms", "published", "verdicts", "diversity"} <= names
    assert names == {p.stem for p in built.tables.glob("*.json")}
    main = pd.read_csv(built.tables / "main_table.csv")
    assert len(main) == 5 and "geneval interval" in main.columns
    assert pd.read_json(built.tables / "comparisons.json")["p_holm"].between(0, 1).all()


def test_reward_corruption_correlations_show_only_when_the_world_was_kept(built: Built, tmp_path: Path) -> None:
    html = built.html.read_text()
    assert 'id="data-correlations"' in html and "shapes_quality with blur_sigma (r = −0.600)" in html
    assert "shapes_alignment with caption_wrong (r = −0.800)" in html
    matrix = pd.read_csv(built.tables / "data_correlations.csv").set_index("reward")
    assert list(matrix.columns) == ["blur_sigma", "noise_std", "cut", "caption_wrong"] and matrix["cut"].isna().all()
    real = build_report(write_synthetic_sweep(tmp_path / "sweep", prompts=6, samples=1, optional=False))
    assert "data-correlations" not in real.html.read_text() and not (real.tables / "data_correlations.csv").exists()


def test_a_sweep_with_no_results_yet_still_renders(tmp_path: Path) -> None:
    root = write_synthetic_sweep(tmp_path / "sweep", prompts=6, samples=1, optional=False)
    (root / "results" / "metrics.parquet").unlink()
    built = build_report(root)
    html = built.html.read_text()
    assert "metrics.parquet is missing" in html and "No comparison could be made yet" in html
    assert all(c == "" for row in cells(html).values() for c in row) and len(cells(html)) == 5


def test_the_shape_confusion_shows_what_each_arm_drew_for_each_prompted_class(built: Built, tmp_path: Path) -> None:
    html = built.html.read_text()
    assert 'id="shape-confusion"' in html
    assert "baseline 0.167 read as prompted, 0.500 nothing" in html and "miro 0.833 read as prompted, 0.167 nothing" in html
    table = pd.read_csv(built.tables / "shape_confusion.csv")
    assert list(table.columns) == ["arm", "step", "prompted", "circle", "square", "triangle", "nothing"]
    baseline = table[table["arm"] == "baseline"].set_index("prompted")
    assert baseline.loc["square", "circle"] == 3 * 2 and baseline.loc["square", "square"] == 0  # 3 images x 2 seeds
    assert set(table["step"]) == {table["step"].max()}  # each arm at its last step only
    real = build_report(write_synthetic_sweep(tmp_path / "sweep", prompts=6, samples=1, optional=False))
    assert "shape-confusion" not in real.html.read_text() and not (real.tables / "shape_confusion.csv").exists()
