"""The main job end to end on the smallest sweep, with the local executor: plan, run, resume, report."""
import json
import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from harness.plan import plan_study
from harness.store import Store
from harness.study_file import load_study
from harness.sweep import main

SMALL = ["--set", "evaluation.samples_per_prompt=2", "--set", "tuning.trials=2"]


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    main(["smoke", "--root", str(root), *SMALL])
    return root


def test_smoke_sweep_runs_every_unit_and_writes_the_report(finished_sweep, capsys):
    sweep_dir = finished_sweep / "sweeps" / "smoke"
    assert (sweep_dir / "report.html").is_file()
    record = json.loads((sweep_dir / "sweep.json").read_text())
    assert record["finished_units"] == record["expected_units"] == 1 + 2 + 4 + 1 + 1  # data, train, evaluate, tune, control
    assert [a["name"] for a in record["arms"]] == ["baseline", "miro"]
    assert record["arms"][1]["diff"] == {"rewards.scheme": ["none", "tokens"]}
    metrics = pd.read_parquet(sweep_dir / "results" / "metrics.parquet")
    assert set(metrics["arm"]) == {"baseline", "miro"} and set(metrics["step"]) == {10, 20}
    assert {"geneval", "shapes_quality", "shapes_alignment"} <= set(metrics["metric"])
    control = pd.read_parquet(sweep_dir / "results" / "controllability.parquet")
    assert set(control["reward"]) == {"shapes_alignment", "shapes_quality", "shapes_size"}
    assert set(control["target"]) == {0.0, 0.5, 1.0} and set(control["arm"]) == {"miro"}
    pareto = json.loads((sweep_dir / "results" / "pareto.json").read_text())
    assert pareto["arm"] == "miro" and len(pareto["trials"]) == 2 and pareto["prompts"] == "shapes-validation"
    correlations = pd.read_csv(sweep_dir / "results" / "data_correlations.csv")  # the world's truth against each reward
    assert {"shapes_quality", "shapes_alignment"} <= set(correlations["reward"]) and "caption_wrong" in set(correlations["factor"])
    confusion = pd.read_csv(sweep_dir / "results" / "shape_confusion.csv")  # what the detector read on one-class prompts
    assert set(confusion["arm"]) == {"baseline", "miro"} and set(confusion["prompted"]) <= {"circle", "square", "triangle"}
    assert set(confusion["read"]) <= {"circle", "square", "triangle", "nothing"}
    assert confusion.groupby(["arm", "seed", "step"])["images"].sum().nunique() == 1  # every evaluation judged the same images
    html = (sweep_dir / "report.html").read_text()
    assert 'id="claims"' in html and 'id="data-correlations"' in html and 'id="shape-confusion"' in html


def test_rerunning_the_sweep_skips_finished_units(finished_sweep, capsys):
    main(["smoke", "--root", str(finished_sweep), *SMALL])
    out = capsys.readouterr().out
    assert "9 of 9 units done" in out and out.strip().endswith("report.html")
    store = Store(finished_sweep / "store")
    plan = plan_study(load_study("smoke", overrides=SMALL[1::2]), store)
    for _, units in plan.waves:
        for planned in units:
            events = (store.unit_dir(planned.unit.key) / "events.jsonl").read_text()
            assert events.count('"submitted"') == 1, planned.label


def test_dry_run_and_status_print_the_plan_without_running(finished_sweep, capsys):
    main(["smoke", "--root", str(finished_sweep), "--dry-run", "--executor", "slurm", "--partition", "gpu", "--time-min", "30"])
    out = capsys.readouterr().out
    assert "train        2 units (2 train): 2 done" in out and "#SBATCH --partition=gpu" in out and "#SBATCH --time=30" in out


def test_help_lists_the_builtin_studies_without_importing_the_pipeline():
    from ablations.sweeps import SWEEPS

    code = ("import sys\nfrom harness.sweep import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'submitit', 'ablations.sweeps') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}).stdout
    assert out.strip().endswith("[]"), out  # --help starts in a fraction of a second: no torch
    assert f"a built-in study ({', '.join(SWEEPS)})" in " ".join(out.split())


def test_an_unknown_sweep_is_refused_with_did_you_mean(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["smok", "--root", str(tmp_path)])
    assert 'did you mean "smoke"' in capsys.readouterr().err


def test_a_sweep_whose_new_units_fail_keeps_the_finished_report(finished_sweep, monkeypatch, capsys):
    from slurm.toy_units import importable_by_jobs

    import harness.units

    importable_by_jobs(monkeypatch)
    monkeypatch.setitem(harness.units.KINDS, "evaluate", "slurm.toy_units:fail")  # every new evaluation fails
    sweep_dir = finished_sweep / "sweeps" / "smoke"
    kept = {p: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file()}
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:  # other settings: new evaluation units, the rest reused
        main(["smoke", "--root", str(finished_sweep), "--set", "evaluation.samples_per_prompt=3", "--set", "tuning.trials=2"])
    out, err = capsys.readouterr()
    last = err.splitlines()[-1]  # after the progress bar
    assert exit.value.code == 2 and last.startswith("error: 4 units of study smoke failed or are blocked")
    assert "the last complete report is kept" in last
    assert len(re.findall(r"failed +evaluate +evaluate \S+ (baseline|miro) seed 0 step \d+  .*TypeError", out)) == 4
    assert out.count("log: ") == 4
    assert {p: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file()} == kept  # byte for byte
    partial = json.loads((finished_sweep / "sweeps" / "smoke.partial" / "sweep.json").read_text())
    assert partial["description"].startswith("PARTIAL: 5 of 9 units") and (finished_sweep / "sweeps" / "smoke.partial" / "report.html").is_file()
    main(["smoke", "--root", str(finished_sweep), "--set", "evaluation.samples_per_prompt=3", "--set", "tuning.trials=2", "--status"])
    assert len(re.findall(r"failed +evaluate +evaluate .*TypeError", capsys.readouterr().out)) == 4  # --status: the same table


def test_a_damaged_result_is_left_out_with_a_note_and_recomputed_by_retry(finished_sweep, tmp_path, capsys):
    root = shutil.copytree(finished_sweep, tmp_path / "runs")  # the store is relocatable; the module's sweep stays whole
    store = Store(root / "store")
    plan = plan_study(load_study("smoke", overrides=SMALL[1::2]), store)
    truncated, nan = plan.evaluate[0], plan.evaluate[1]
    images = store.work_dir(truncated.unit.key) / "images.jsonl"
    images.write_text(images.read_text()[:-30])
    summary_path = store.work_dir(nan.unit.key) / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["metrics"]["shapes_quality"]["value"] = float("nan")
    summary_path.write_text(json.dumps(summary))
    with pytest.raises(SystemExit) as exit:
        main(["smoke", "--root", str(root), *SMALL])
    out, err = capsys.readouterr()
    assert exit.value.code == 2 and "7 of 9 units done" in out and err.strip().splitlines()[-1].startswith("error: 2 units of study smoke failed")
    assert store.state(truncated.unit.key) == store.state(nan.unit.key) == "failed"
    partial = root / "sweeps" / "smoke.partial"  # the complete report is kept, the one without the two units is beside it
    notes = json.loads((partial / "sweep.json").read_text())["notes"]
    assert len(notes) == 2 and notes[0].startswith(f"{truncated.label} (unit {truncated.unit.key}): results left out: {images} is corrupt")
    assert "summary.json is corrupt or truncated (NaN is not a finite number)" in notes[1] and all(n.endswith("rerun the sweep with --retry to recompute the unit") for n in notes)
    shown = pd.read_parquet(partial / "results" / "metrics.parquet")[["arm", "seed", "step"]].drop_duplicates()
    left_out = {(u.arm, u.seed, u.step) for u in (truncated, nan)}
    assert set(shown.itertuples(index=False, name=None)) == {(u.arm, u.seed, u.step) for u in plan.evaluate} - left_out
    main(["smoke", "--root", str(root), *SMALL, "--retry"])
    assert store.state(truncated.unit.key) == store.state(nan.unit.key) == "done"
    assert json.loads((root / "sweeps" / "smoke" / "sweep.json").read_text())["notes"] == []
