"""Units on a real SLURM: arrays, a failure's traceback, cancellation, requeue after a signal and after a real
time limit, and DDP with one process per task. The time-limit unit is submitted when this module starts and
checked last, so its two minutes overlap the other tests."""
from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.executors import Executor, SlurmResources, UnitRun, make_executor, submit_units
from harness.store import Store
from slurm.toy_units import FUNCTIONS, importable_by_jobs, wait_for
from slurm.toy_units import toy_unit as unit

pytestmark = pytest.mark.slurm
TIME_LIMIT_STEPS, TIME_LIMIT_STEP_S = 220, 0.5  # 110 s of work in jobs limited to 2 min, signalled 15 s before


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with pytest.MonkeyPatch.context() as patch:
        importable_by_jobs(patch)
        patch.setenv("OMP_NUM_THREADS", "1")
        yield Store(tmp_path_factory.mktemp("slurm") / "store", heartbeat_s=0.5, stale_after_s=30.0)


@pytest.fixture(scope="module")
def slurm(store: Store) -> Executor:
    return make_executor("slurm", store.root.parent / "jobs", SlurmResources(time_min=5, signal_delay_s=30))


@pytest.fixture(scope="module", autouse=True)
def time_limit_run(store: Store) -> Iterator[UnitRun]:
    executor = make_executor("slurm", store.root.parent / "jobs-time-limit", SlurmResources(time_min=2, signal_delay_s=15))
    counter = unit(store, "count", to=TIME_LIMIT_STEPS, step_s=TIME_LIMIT_STEP_S)
    run = submit_units(executor, store, [counter], FUNCTIONS, poll_s=2, progress=False)
    yield run
    run.cancel()  # when the test that checks it did not run


def sacct_state(job_id: str, timeout_s: float = 30) -> str:
    """The job's final state in accounting (a unit is recorded before its job has quite ended)."""
    end = time.time() + timeout_s
    while True:
        state = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", "-j", job_id], capture_output=True, text=True).stdout.strip()
        if state.split(" ")[0] not in ("", "PENDING", "RUNNING", "COMPLETING", "REQUEUED") or time.time() > end:
            return state
        time.sleep(0.5)


def events(store: Store, key: str) -> list[dict]:
    return [json.loads(line) for line in (store.unit_dir(key) / "events.jsonl").read_text().splitlines()]


def test_units_with_the_same_resources_run_as_one_job_array(store: Store, slurm: Executor) -> None:
    adds = [unit(store, "add", a=i, b=100) for i in range(5)]
    run = submit_units(slurm, store, adds, FUNCTIONS, poll_s=1, progress=False)
    job_ids = [run.jobs[u.key].job_id for u in adds]
    assert len({job_id.split("_")[0] for job_id in job_ids}) == 1 and all("_" in job_id for job_id in job_ids)
    assert run.wait() == {u.key: "done" for u in adds}
    assert [store.outputs(u.key)["sum"] for u in adds] == [100, 101, 102, 103, 104]
    assert {sacct_state(job_id) for job_id in job_ids} == {"COMPLETED"}
    assert not submit_units(slurm, store, adds, FUNCTIONS, progress=False).jobs  # done units are not submitted again


def test_a_failing_unit_sends_its_traceback_to_the_store(store: Store, slurm: Executor) -> None:
    bad, good = unit(store, "fail", message="boom on the cluster"), unit(store, "add", a=1, b=2)
    run = submit_units(slurm, store, [bad, good], FUNCTIONS, poll_s=1, progress=False)
    job_id = run.jobs[bad.key].job_id
    assert run.wait() == {bad.key: "failed", good.key: "done"}
    record = store.record(bad.key)
    assert "RuntimeError: boom on the cluster" in record["traceback"] and "toy_units.py" in record["traceback"]
    assert record["job_id"] == job_id and Path(record["stderr"]).is_file()
    assert (store.work_dir(bad.key) / "partial.txt").is_file()
    assert sacct_state(job_id) == "FAILED"


def test_cancelled_units_are_recorded_whoever_cancels_them(store: Store, slurm: Executor) -> None:
    by_sweep, by_user = unit(store, "sleep", seconds=300), unit(store, "sleep", seconds=301)
    run = submit_units(slurm, store, [by_sweep, by_user], FUNCTIONS, poll_s=1, progress=False)
    job_ids = {key: job.job_id for key, job in run.jobs.items()}
    wait_for(lambda: store.state(by_sweep.key) == store.state(by_user.key) == "running")
    run.cancel([by_sweep.key])
    subprocess.run(["scancel", job_ids[by_user.key]], check=True)  # from the command line, behind the sweep's back
    assert run.wait() == {by_sweep.key: "cancelled", by_user.key: "cancelled"}
    assert "CANCELLED" in store.record(by_user.key)["reason"]
    assert store.live_claim(by_sweep.key) is None and store.live_claim(by_user.key) is None
    assert {sacct_state(job_id).split()[0] for job_id in job_ids.values()} == {"CANCELLED"}


def test_a_preempted_unit_requeues_and_resumes_from_its_checkpoint(store: Store, slurm: Executor) -> None:
    counter = unit(store, "count", to=40, step_s=0.2)
    run = submit_units(slurm, store, [counter], FUNCTIONS, poll_s=1, progress=False)
    job = run.jobs[counter.key]
    checkpoint = store.work_dir(counter.key) / "count.json"
    wait_for(lambda: checkpoint.is_file() and len(json.loads(checkpoint.read_text())["visited"]) >= 5)
    job._interrupt(timeout=True)  # USR2, as SLURM sends it before the time limit
    assert run.wait() == {counter.key: "done"}
    outputs = store.outputs(counter.key)
    assert outputs["visited"] == list(range(40)) and outputs["starts"] == 2 and outputs["slurm_restarts"] == 1
    assert [e["event"] for e in events(store, counter.key)][-4:] == ["running", "requeued", "running", "done"]


def test_a_ddp_unit_runs_one_process_per_task(store: Store, tmp_path: Path) -> None:
    executor = make_executor("slurm", tmp_path / "jobs", SlurmResources(time_min=5, signal_delay_s=30, tasks_per_node=2))
    train = unit(store, "train", steps=4)
    assert submit_units(executor, store, [train], FUNCTIONS, poll_s=1, progress=False).wait() == {train.key: "done"}
    assert store.outputs(train.key)["world_size"] == 2


def test_a_unit_killed_by_its_time_limit_requeues_and_finishes_from_its_checkpoint(store: Store, time_limit_run: UnitRun) -> None:
    (key,) = time_limit_run.units
    assert time_limit_run.wait() == {key: "done"}
    outputs = store.outputs(key)
    assert outputs["visited"] == list(range(TIME_LIMIT_STEPS))  # nothing lost, nothing counted twice
    assert outputs["starts"] >= 2 and outputs["slurm_restarts"] >= 1
    assert "requeued" in [e["event"] for e in events(store, key)]


def test_more_units_than_the_cluster_s_largest_array_go_out_as_several_arrays(store: Store, slurm: Executor) -> None:
    from dataclasses import replace

    assert slurm.max_array_size == 1001  # read from the cluster (the test cluster keeps SLURM's default)
    adds = [unit(store, "add", a=i, b=200) for i in range(5)]
    run = submit_units(replace(slurm, max_array_size=2), store, adds, FUNCTIONS, poll_s=1, progress=False)
    arrays = [run.jobs[u.key].job_id.split("_")[0] for u in adds]
    assert len(set(arrays)) == 3 and arrays[0] == arrays[1] != arrays[2] == arrays[3] != arrays[4]
    assert run.wait() == {u.key: "done" for u in adds}
    assert [store.outputs(u.key)["sum"] for u in adds] == [200, 201, 202, 203, 204]
