"""The report's texts follow the arms actually run: its subtitle counts and names them by part, its arms table
gives each its role, and a claim the arms cannot test is set apart instead of judged."""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pandas as pd
from synthetic_sweep import write_synthetic_sweep

from ablations.sweeps import SWEEPS
from reports.build import build_report
from reports.results import ArmSpec, load
from reports.roles import arms_sentence, roles


def subtitle(html: str) -> str:
    found = re.search(r'<p class="lead" id="arms-run">([^<]*)</p>', html)
    assert found, "the report has no arms subtitle"
    return found.group(1)


def test_a_three_arm_study_names_its_three_arms_in_the_subtitle(tmp_path: Path) -> None:
    root = write_synthetic_sweep(tmp_path / "sweep", prompts=12, samples=1, optional=False,
                                 keep_arms=("baseline", "miro", "only-quality"))
    built = build_report(root)
    html = built.html.read_text()
    assert subtitle(html) == ("3 arms: the no-reward baseline, MIRO on 3 rewards (alignment, quality, size) "
                              "and 1 single-reward specialist.")
    arms = pd.read_csv(built.tables / "arms.csv")
    assert list(arms["role"]) == ["no-reward baseline", "MIRO: all 3 rewards", "specialist: quality"]
    untested = re.search(r'id="untested">(.*?)</p>', html, re.S)
    assert untested and "Each reward is controllable" in untested.group(1)  # no controllability sweep was stored


def test_leave_one_out_and_other_arms_are_named_by_what_they_trained_on(tmp_path: Path) -> None:
    spec = load(write_synthetic_sweep(tmp_path / "sweep", prompts=12, samples=1, optional=False)).spec
    miro = spec.arm("miro")
    without = ArmSpec("drop-size", "miro", ("rewards.names",), {}, ("shapes_alignment", "shapes_quality"), miro.config)
    scheme = replace(miro, name="adaln", baseline="miro")
    spec = replace(spec, arms=(*spec.arms, without, scheme))
    assert roles(spec).leave_one_out == ("drop-size",)
    assert arms_sentence(spec) == ("7 arms: the no-reward baseline, MIRO on 3 rewards (alignment, quality, size), "
                                   "3 single-reward specialists, 1 leave-one-out arm and 1 other arm (adaln).")


def test_no_study_states_an_arm_count_its_arms_may_not_have() -> None:
    """Descriptions are questions; the count comes from the arms (a study derived from the paper's keeps its text)."""
    for name in ("default", "shapes-long", "schemes", "smoke"):
        assert not re.search(r"\d+ (arms|specialists)", SWEEPS[name]().description), name
