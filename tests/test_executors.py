"""Executors on this machine: local (warm workers, harness.workers; one process per job through submitit for units
with several tasks) and debug (in this process).

The same code paths run on SLURM in tests/slurm; here every job is a local process, so nothing is skipped.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from slurm.toy_units import FUNCTIONS, importable_by_jobs, wait_for
from slurm.toy_units import toy_unit as unit

from harness.executors import Executor, SlurmResources, make_executor, render_sbatch, retry, submit_units
from harness.store import Store
from harness.units import Unit, owner_token
from miro.errors import MiroError


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    importable_by_jobs(monkeypatch)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return Store(tmp_path / "store", heartbeat_s=0.2, stale_after_s=5.0)


@pytest.fixture
def local(tmp_path: Path) -> Executor:
    return make_executor("local", tmp_path / "jobs", SlurmResources(time_min=5))


# ---- resources and sbatch -----------------------------------------------------------------------------
def test_resources_are_validated_and_overridden_by_field_name() -> None:
    base = SlurmResources(partition="gpu", additional_parameters={"exclusive": True})
    assert base.additional_parameters == (("exclusive", True),) and hash(base)
    assert base.override({"gpus_per_node": 8}).gpus_per_node == 8
    with pytest.raises(MiroError, match='did you mean "gpus_per_node"'):
        base.override({"gpu_per_node": 8})
    with pytest.raises(MiroError, match="nodes = 0 must be at least 1"):
        SlurmResources(nodes=0)
    with pytest.raises(MiroError, match="must exceed 60 s"):
        SlurmResources(time_min=2, signal_delay_s=90)


def test_render_sbatch_shows_the_exact_request(tmp_path: Path) -> None:
    resources = SlurmResources(partition="gpu", account="proj", qos="high", time_min=240, nodes=2, tasks_per_node=8,
                               gpus_per_node=8, cpus_per_task=12, mem_gb=480, constraint="h100", array_parallelism=4,
                               signal_delay_s=120, additional_parameters={"mail-type": "END"})
    script = render_sbatch(resources, tmp_path, name="train", array_size=10)
    for line in ["--partition=gpu", "--account=proj", "--qos=high", "--time=240", "--nodes=2", "--ntasks-per-node=8",
                 "--gpus-per-node=8", "--cpus-per-task=12", "--mem=491520M", "--constraint=h100", "--array=0-9%4",
                 "--signal=USR2@120", "--mail-type=END", "--job-name=train"]:
        assert f"#SBATCH {line}\n" in script
    assert "export PYTHONPATH=" in script and "srun --unbuffered" in script and "submitit.core._submit" in script
    assert "--gpus-per-node" not in render_sbatch(SlurmResources(), tmp_path)  # no GPU asked, none requested


def test_make_executor_refuses_an_unknown_kind_and_a_machine_without_sbatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MiroError, match='did you mean "slurm"'):
        make_executor("slurmm", tmp_path)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(MiroError, match="sbatch is not on PATH"):
        make_executor("slurm", tmp_path)


def test_a_mis_specified_run_is_refused_before_anything_is_submitted(store: Store, local: Executor) -> None:
    ok = unit(store, "add", a=1, b=2)
    with pytest.raises(MiroError, match='no function for unit kind "ad"'):
        submit_units(local, store, [Unit("ad", ok.key)], FUNCTIONS)
    with pytest.raises(MiroError, match="neither in this run nor done"):
        submit_units(local, store, [Unit("add", ok.key, {}, ("train-missing",))], FUNCTIONS)
    with pytest.raises(MiroError, match="runs on one node"):
        submit_units(local, store, [Unit("add", ok.key, {}, (), {"nodes": 2})], FUNCTIONS)
    assert "submitted" not in (store.unit_dir(ok.key) / "events.jsonl").read_text()


# ---- local executor ---------------------------------------------------------------------------------------
def test_independent_units_survive_a_failure_and_retry_resubmits_only_it(store: Store, local: Executor) -> None:
    adds = [unit(store, "add", a=i, b=10) for i in range(2)]
    bad = unit(store, "fail", message="boom")
    run = submit_units(local, store, [*adds, bad], FUNCTIONS, max_running=2, poll_s=1, progress=False)
    assert len(run.jobs) == 2  # the third waits for a free slot
    assert run.wait() == {adds[0].key: "done", adds[1].key: "done", bad.key: "failed"}
    assert [store.outputs(u.key)["sum"] for u in adds] == [10, 11]
    assert "RuntimeError: boom" in store.record(bad.key)["traceback"]
    assert (store.work_dir(bad.key) / "partial.txt").exists()  # what the failed unit wrote is kept

    rerun = retry(local, store, [*adds, bad], FUNCTIONS, poll_s=1, progress=False)
    assert list(rerun.jobs) == [bad.key]
    assert rerun.wait() == {bad.key: "failed"} and store.record(bad.key)["attempt"] == 2
    finished = submit_units(local, store, adds, FUNCTIONS, progress=False)  # a rerun skips finished units
    assert not finished.jobs and finished.wait() == {u.key: "done" for u in adds}


def test_a_unit_after_a_failed_dependency_is_blocked(store: Store, local: Executor) -> None:
    bad = unit(store, "fail", message="no data")
    after = unit(store, "add", depends_on=(bad.key,), a=1, b=1)
    states = submit_units(local, store, [after, bad], FUNCTIONS, poll_s=1, progress=False).wait()
    assert states == {bad.key: "failed", after.key: "blocked"} and store.state(after.key) == "pending"


def test_fail_fast_cancels_the_other_units(store: Store, local: Executor) -> None:
    slow, bad = unit(store, "sleep", seconds=120), unit(store, "fail", message="boom")
    states = submit_units(local, store, [slow, bad], FUNCTIONS, fail_fast=True, poll_s=1, progress=False).wait()
    assert states == {slow.key: "cancelled", bad.key: "failed"}
    assert store.state(slow.key) == "cancelled"


def test_cancelling_a_running_unit_records_it_and_frees_it(store: Store, local: Executor) -> None:
    slow = unit(store, "sleep", seconds=120)
    run = submit_units(local, store, [slow], FUNCTIONS, poll_s=1, progress=False)
    wait_for(lambda: store.state(slow.key) == "running")
    run.cancel([slow.key])
    assert run.wait() == {slow.key: "cancelled"}
    wait_for(lambda: store.live_claim(slow.key) is None, 10)
    assert store.state(slow.key) == "cancelled" and store.status()[slow.key].detail  # says who cancelled it


def test_a_killed_job_is_recorded_failed_with_where_its_logs_are(store: Store, local: Executor) -> None:
    slow = unit(store, "sleep", seconds=120)
    run = submit_units(local, store, [slow], FUNCTIONS, poll_s=1, progress=False)
    wait_for(lambda: store.state(slow.key) == "running")
    os.kill(store.record(slow.key)["pid"], signal.SIGKILL)  # what the OOM killer does
    assert run.wait() == {slow.key: "failed"}
    assert "no result" in store.record(slow.key)["reason"] and "_log.err" in store.record(slow.key)["reason"]
    assert store.live_claim(slow.key) is None


def test_a_timed_out_unit_requeues_and_resumes_from_its_checkpoint(store: Store, local: Executor) -> None:
    counter = unit(store, "count", to=30, step_s=0.2)
    run = submit_units(local, store, [counter], FUNCTIONS, poll_s=1, progress=False)
    job = run.jobs[counter.key]
    checkpoint = store.work_dir(counter.key) / "count.json"
    wait_for(lambda: checkpoint.is_file() and len(json.loads(checkpoint.read_text())["visited"]) >= 5)
    os.kill(store.record(counter.key)["pid"], signal.SIGUSR2)  # the signal submitit's controller sends at the time limit
    assert run.wait() == {counter.key: "done"}
    outputs = store.outputs(counter.key)
    assert outputs["visited"] == list(range(30)) and outputs["starts"] == 2  # resumed, nothing lost or repeated
    events = [json.loads(line) for line in (store.unit_dir(counter.key) / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events[-4:]] == ["running", "requeued", "running", "done"]
    assert events[-4]["owner"] == events[-2]["owner"] == owner_token("local", job.job_id)  # the requeued job took its own claim back


def test_warm_workers_run_unit_after_unit_in_one_process_and_a_fresh_one_after_a_failure(store: Store, local: Executor) -> None:
    first = unit(store, "add", a=1, b=1)
    second = unit(store, "add", depends_on=(first.key,), a=2, b=2)
    assert submit_units(local, store, [first, second], FUNCTIONS, max_running=1, poll_s=1, progress=False).wait() == \
        {first.key: "done", second.key: "done"}
    warm = store.record(first.key)["pid"]
    assert store.record(second.key)["pid"] == warm != os.getpid()  # one worker ran both
    fresh = subprocess.run([sys.executable, "-c", "import multiprocessing; print(multiprocessing.get_start_method())"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert store.outputs(first.key)["start_method"] == fresh  # a unit's DataLoaders start workers as in a cold run
    bad, after = unit(store, "fail", message="boom"), unit(store, "add", a=3, b=3)
    assert submit_units(local, store, [bad], FUNCTIONS, poll_s=1, progress=False).wait() == {bad.key: "failed"}
    assert store.record(bad.key)["pid"] == warm and "RuntimeError: boom" in Path(store.record(bad.key)["stderr"]).read_text()
    assert submit_units(local, store, [after], FUNCTIONS, poll_s=1, progress=False).wait() == {after.key: "done"}
    assert store.record(after.key)["pid"] != warm  # the worker of a failed unit is replaced, never reused


def test_two_processes_train_with_ddp_over_gloo(store: Store, tmp_path: Path) -> None:
    executor = make_executor("local", tmp_path / "jobs", SlurmResources(time_min=5, tasks_per_node=2))
    train = unit(store, "train", steps=4)
    assert submit_units(executor, store, [train], FUNCTIONS, poll_s=1, progress=False).wait() == {train.key: "done"}
    outputs = store.outputs(train.key)
    assert outputs["world_size"] == 2 and Path(outputs["checkpoint"]).name == "step-0000004"
    assert json.loads((store.unit_dir(train.key) / "manifest.json").read_text())["world_size"] == 2


def test_two_sweeps_sharing_a_unit_compute_it_once(store: Store, local: Executor, tmp_path: Path) -> None:
    other = make_executor("local", tmp_path / "other-jobs", SlurmResources(time_min=5))
    shared = unit(store, "count", to=15, step_s=0.2)
    first = submit_units(local, store, [shared], FUNCTIONS, poll_s=1, progress=False)
    second = submit_units(other, store, [unit(store, "count", to=15, step_s=0.2)], FUNCTIONS, poll_s=1, progress=False)
    assert list(second.jobs) == [shared.key]  # same inputs, same key; submitted before the first job started
    assert first.wait() == second.wait() == {shared.key: "done"}
    assert store.outputs(shared.key)["starts"] == 1 and store.attempts(shared.key) == 1  # one job ran it, one saw it busy


# ---- debug executor and shared units -----------------------------------------------------------------------
def test_debug_runs_dependencies_in_order_in_this_process(store: Store, tmp_path: Path) -> None:
    debug = make_executor("debug", tmp_path / "jobs")
    first = unit(store, "add", a=1, b=2)
    second = unit(store, "add", depends_on=(first.key,), a=3, b=4)
    assert submit_units(debug, store, [second, first], FUNCTIONS, poll_s=0, progress=False).wait() == {first.key: "done", second.key: "done"}
    assert store.record(first.key)["pid"] == store.record(second.key)["pid"] == os.getpid()
    assert store.record(first.key)["updated"] <= store.record(second.key)["updated"]
    with pytest.raises(MiroError, match="in one process"):
        submit_units(debug, store, [Unit("add", first.key, {}, (), {"tasks_per_node": 2})], FUNCTIONS)


def test_a_unit_another_runner_owns_is_watched_not_run_again(store: Store, tmp_path: Path) -> None:
    debug = make_executor("debug", tmp_path / "jobs")
    shared = unit(store, "add", a=5, b=5)
    claim = store.unit_dir(shared.key) / "claim.json"
    claim.write_text(json.dumps({"owner": "slurm:41", "host": "other-node", "pid": 1}))  # a second sweep's job
    run = submit_units(debug, store, [shared], FUNCTIONS, poll_s=0, progress=False)
    assert not run.jobs and not run.step()
    store.write_outputs(shared.key, {"sum": 10})  # the other sweep finishes it
    store.set_state(shared.key, "done")
    store.release(shared.key, "slurm:41")
    assert run.step() and run.states == {shared.key: "done"}

    orphan = unit(store, "add", a=1, b=1)
    claim = store.unit_dir(orphan.key) / "claim.json"
    claim.write_text(json.dumps({"owner": "slurm:42", "host": "other-node", "pid": 1}))
    os.utime(claim, (time.time() - 60, time.time() - 60))  # its runner died long ago
    assert submit_units(debug, store, [orphan], FUNCTIONS, poll_s=0, progress=False).wait() == {orphan.key: "done"}
    assert store.outputs(orphan.key)["sum"] == 2
