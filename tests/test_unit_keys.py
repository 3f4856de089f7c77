"""Every field of a unit's key, pinned: a change to what decides a unit's result gives exactly the units it decides
(and those that read them) new keys, and nothing else. Planned on the smoke study with an evaluate-only arm, so a
sampling setting of an evaluate-only arm (whose checkpoint no training key protects) is seen on its own: two such
arms on one run folder with guidance 3 and 5 must not share their evaluations."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

import harness.plan
from harness.plan import plan_study
from harness.store import Store
from harness.study import Arm, Study
from harness.study_file import load_study, override
from miro.checkpoint import checkpoint_path

TRAINED = {(kind, arm) for arm in ("baseline", "miro") for kind in ("train", "evaluate")} | {("tune", "miro"), ("control", "miro")}


def with_imported(root: Path, guidance: float = 3.0, name: str = "imported", study: Study | None = None) -> Study:
    """The smoke study plus an evaluate-only arm read from a run folder with checkpoints at 10 and 20."""
    study = study or load_study("smoke")
    for step in (10, 20):
        checkpoint_path(root / "released", step).mkdir(parents=True, exist_ok=True)
        (checkpoint_path(root / "released", step) / "ema.safetensors").write_bytes(f"weights {step}".encode())
    miro = study.arm("miro").config
    config = replace(miro, sample=replace(miro.sample, guidance_scale=guidance))
    return replace(study, arms=(*study.arms, Arm(name, config, ablates=("sample",), baseline="miro", evaluate_only=str(root / "released"))))


def keys(study: Study, root: Path) -> dict[tuple[str, str | None, str], str]:
    plan = plan_study(study, Store(root / "store"))
    return {(p.unit.kind, p.arm, p.label): p.unit.key for _, wave in plan.waves for p in wave}


def changed(before: dict, after: dict) -> set[tuple[str, str | None]]:
    assert before.keys() == after.keys()
    return {(kind, arm) for (kind, arm, label), key in before.items() if after[(kind, arm, label)] != key}


CASES: list[tuple[str, Callable[[Study], Study], set[tuple[str, str | None]]]] = [
    ("evaluate-only guidance", lambda s: replace(s, arms=(*s.arms[:2], replace(s.arms[2], config=replace(
        s.arms[2].config, sample=replace(s.arms[2].config.sample, guidance_scale=5.0))))), {("evaluate", "imported")}),
    ("evaluate-only sampler steps", lambda s: replace(s, arms=(*s.arms[:2], replace(s.arms[2], config=replace(
        s.arms[2].config, sample=replace(s.arms[2].config.sample, steps=3))))), {("evaluate", "imported")}),
    ("suite samples per prompt", lambda s: override(s, "evaluation.samples_per_prompt=3"),
     {("evaluate", arm) for arm in ("baseline", "miro", "imported")}),
    ("suite GenEval off", lambda s: override(s, "evaluation.geneval=False"), {("evaluate", arm) for arm in ("baseline", "miro", "imported")}),
    ("suite seed", lambda s: override(s, "evaluation.seed=7"), {("evaluate", arm) for arm in ("baseline", "miro", "imported")}),
    ("tuning trials", lambda s: override(s, "tuning.trials=5"), {("tune", "miro")}),
    ("tuning prompts", lambda s: override(s, "tuning.samples_per_prompt=3"), {("tune", "miro")}),
    ("control values", lambda s: override(s, "control.values=[0.0,1.0]"), {("control", "miro")}),
    ("control seed", lambda s: override(s, "control.seed=3"), {("control", "miro")}),
    ("learning rate", lambda s: override(s, "run.optim.lr=0.002"), TRAINED),
    ("data", lambda s: override(s, "run.data.num_samples=999"), TRAINED | {("data", None)}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_a_change_gives_new_keys_to_exactly_the_units_it_decides(case, tmp_path):
    _, change, expected = case
    base = with_imported(tmp_path)
    assert changed(keys(base, tmp_path), keys(change(base), tmp_path)) == expected


def test_two_evaluate_only_arms_on_one_run_folder_share_only_what_they_sample_alike(tmp_path):
    study = with_imported(tmp_path, 3.0, "guidance-3")
    study = with_imported(tmp_path, 5.0, "guidance-5", study)
    study = with_imported(tmp_path, 3.0, "again-3", study)
    found = keys(study, tmp_path)
    evaluations = {arm: sorted(key for (kind, a, _), key in found.items() if kind == "evaluate" and a == arm)
                   for arm in ("guidance-3", "guidance-5", "again-3")}
    assert evaluations["again-3"] == []  # the same checkpoint sampled alike: its evaluations are guidance-3's, planned once
    assert len(evaluations["guidance-3"]) == len(evaluations["guidance-5"]) == 2
    assert not set(evaluations["guidance-3"]) & set(evaluations["guidance-5"])


def test_a_change_of_the_code_gives_every_unit_a_new_key(tmp_path, monkeypatch):
    base = with_imported(tmp_path)
    before = keys(base, tmp_path)
    monkeypatch.setattr(harness.plan, "source_hash", lambda *paths: "another version")
    assert changed(before, keys(base, tmp_path)) == {(kind, arm) for kind, arm, _ in before}
