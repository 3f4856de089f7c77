"""The main job end to end on the smallest sweep, with the local executor: plan, run, resume, report."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.plan import plan_study
from harness.store import Store
from harness.study_file import load_study
from harness.sweep import main
from harness.tasks import run_dir

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


def test_tensorboard_on_the_sweep_folder_shows_each_arms_training_and_evaluation_curves(finished_sweep):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    board = EventMultiplexer().AddRunsFromDirectory(str(finished_sweep / "sweeps" / "smoke"))
    board.Reload()
    assert sorted(board.Runs()) == ["tensorboard/baseline-seed0", "tensorboard/miro-seed0"]
    for run in board.Runs():
        loss = [event.step for event in board.Scalars(run, "train/loss")]
        assert loss == list(range(1, 21))  # 20 steps: a point each (about 200 points for a long run)
        assert [event.step for event in board.Scalars(run, "eval/shapes/geneval")] == [10, 20]
        summary = json.loads(next((finished_sweep / "store" / "units").glob("evaluate-*/work/summary.json")).read_text())
        assert {f"eval/shapes/{name}" for name in summary["metrics"]} <= set(board.Runs()[run]["scalars"])


def claims_shown(out: str, sweep_dir) -> None:
    """Every claim of the report's claims table is in `out`: its verdict, its statement, its first numbers."""
    claims = pd.read_csv(sweep_dir / "report_tables" / "claims.csv", keep_default_na=False)
    assert len(claims) == 5
    for claim in claims.itertuples():
        first = claim.evidence.split(" | ")[0] or claim.reason
        assert re.search(rf"\n  {re.escape(claim.status)} +{re.escape(claim.statement)}\n +{re.escape(first)}", out), claim.key


def test_rerunning_the_sweep_skips_finished_units_and_ends_with_the_claims(finished_sweep, capsys):
    main(["smoke", "--root", str(finished_sweep), *SMALL])
    out = capsys.readouterr().out
    assert "9 of 9 units done" in out and out.strip().endswith("report.html")
    claims_shown(out, finished_sweep / "sweeps" / "smoke")
    main(["smoke", "--root", str(finished_sweep), *SMALL, "--status"])
    claims_shown(capsys.readouterr().out, finished_sweep / "sweeps" / "smoke")
    store = Store(finished_sweep / "store")
    plan = plan_study(load_study("smoke", overrides=SMALL[1::2]), store)
    for _, units in plan.waves:
        for planned in units:
            events = (store.unit_dir(planned.unit.key) / "events.jsonl").read_text()
            assert events.count('"submitted"') == 1, planned.label


def stop_while_a_unit_runs(command: list[str], root, signum: int) -> str:
    """Start the runner, send it `signum` once a unit is running, and return its last line on stderr."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    runner = subprocess.Popen([sys.executable, "-m", "harness.sweep", *command], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    store, deadline = Store(root / "store"), time.monotonic() + 300
    while not any(s.state == "running" for s in store.status().values()) and runner.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    runner.send_signal(signum)
    _, err = runner.communicate(timeout=120)
    assert runner.returncode == 128 + signum, err[-2000:]
    assert not [s for s in store.status().values() if s.state == "running"]  # every unit it ran is recorded
    return err.strip().splitlines()[-1]


def test_sigint_and_sigterm_stop_the_runner_with_one_line_and_a_rerun_finishes(finished_sweep, capsys):
    command = ["smoke", "--root", str(finished_sweep), "--set", "evaluation.samples_per_prompt=4", "--set", "tuning.trials=2"]
    for signum, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
        line = stop_while_a_unit_runs(command, finished_sweep, signum)
        assert re.fullmatch(rf"error: stopped by {name}: launched nothing more, stopped [12] running unit\(s\) and recorded "
                            r"them cancelled \(training resumes from its last checkpoint\); \d of 9 units done and kept; "
                            "rerun the same command to resume", line), line
    main(command)
    assert "9 of 9 units done" in capsys.readouterr().out


def test_warm_workers_give_the_results_of_fresh_processes(finished_sweep, tmp_path):
    root = shutil.copytree(finished_sweep, tmp_path / "runs", symlinks=True)
    store = Store(root / "store")
    plan = plan_study(load_study("smoke", overrides=SMALL[1::2]), store)
    for planned in plan.evaluate:  # evaluated again, each in a process of its own
        shutil.rmtree(store.unit_dir(planned.unit.key))
    main(["smoke", "--root", str(root), *SMALL, "--cold"])
    warm = Store(finished_sweep / "store")
    for planned in plan.evaluate:
        assert store.record(planned.unit.key)["pid"] != warm.record(planned.unit.key)["pid"]
        cold_rows, warm_rows = ([json.loads(line) for line in (s.work_dir(planned.unit.key) / "images.jsonl").read_text().splitlines()]
                                for s in (store, warm))
        assert len(warm_rows) > 0 and [{**row, "file": ""} for row in cold_rows] == [{**row, "file": ""} for row in warm_rows]
        for cold_row, warm_row in zip(cold_rows, warm_rows):  # the very same pixels (paths differ: the stores do)
            assert Path(cold_row["file"]).read_bytes() == Path(warm_row["file"]).read_bytes(), planned.label
        cold_summary, warm_summary = (json.loads((s.work_dir(planned.unit.key) / "summary.json").read_text()) for s in (store, warm))
        assert cold_summary["metrics"] == warm_summary["metrics"]


def test_dry_run_and_status_print_the_plan_without_running(finished_sweep, capsys):
    main(["smoke", "--root", str(finished_sweep), "--dry-run", "--executor", "slurm", "--partition", "gpu", "--time-min", "30"])
    out = capsys.readouterr().out
    assert "train        2 units (2 train): 2 done" in out and "#SBATCH --partition=gpu" in out and "#SBATCH --time=30" in out


def test_status_counts_the_training_steps_a_unit_has_not_logged(finished_sweep, tmp_path, capsys):
    root = tmp_path / "runs"
    shutil.copytree(finished_sweep, root, symlinks=True)
    store = Store(root / "store")
    key = plan_study(load_study("smoke", overrides=SMALL[1::2]), store).train[0].unit.key
    store.set_state(key, "failed")  # stopped at its step 10, say: a rerun trains its 10 steps left, not 20
    log = run_dir(store.work_dir(key)) / "log.jsonl"
    log.write_text("".join(line + "\n" for line in log.read_text().splitlines() if json.loads(line)["step"] <= 10))
    main(["smoke", "--root", str(root), *SMALL, "--status"])
    assert "training steps left: 10 (" in capsys.readouterr().out


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
