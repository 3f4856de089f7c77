"""The store of units and the runner that writes it: keys, records, claims (with stale recovery), run_unit."""
from __future__ import annotations

import json
import math
import multiprocessing
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from harness.store import Store, unit_key
from harness.units import Unit, current_owner, resolve_function, run_unit
from miro.errors import MiroError

INPUTS = {"config": {"lr": 0.001, "steps": 100}, "code": "abc123", "data": "sha:00ff"}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store", heartbeat_s=0.05, stale_after_s=5.0)


# ---- unit functions for run_unit (module level, as a job would import them) ------------------------------
def record_call(work_dir: Path, value: int) -> dict[str, int]:
    calls = work_dir / "calls.txt"
    calls.write_text(calls.read_text() + "x" if calls.exists() else "x")
    return {"value": value, "calls": len(calls.read_text())}


def broken(work_dir: Path) -> dict[str, int]:
    (work_dir / "checkpoint.txt").write_text("step 5")
    raise ValueError("loss is NaN at step 5")


def not_a_dict(work_dir: Path) -> list[int]:
    return [1, 2]


def interrupted(work_dir: Path) -> dict[str, int]:
    raise KeyboardInterrupt


def fake_claim(store: Store, key: str, *, owner: str, host: str, pid: int, age_s: float = 0.0) -> None:
    path = store.unit_dir(key) / "claim.json"
    path.write_text(json.dumps({"owner": owner, "host": host, "pid": pid}))
    os.utime(path, (time.time() - age_s, time.time() - age_s))


# ---- keys -------------------------------------------------------------------------------------------------
def test_unit_key_is_a_stable_content_hash() -> None:
    reordered = {"data": "sha:00ff", "code": "abc123", "config": {"steps": 100, "lr": 0.001}}
    assert unit_key("train", INPUTS) == unit_key("train", reordered) == "train-ad31aca6256a47cc"  # pinned across versions
    assert unit_key("train", {**INPUTS, "code": "abc124"}) != unit_key("train", INPUTS)
    assert unit_key("score", INPUTS) != unit_key("train", INPUTS)
    assert unit_key("t", {"p": Path("/a/b"), "s": {2, 1}}) == unit_key("t", {"p": "/a/b", "s": [1, 2]})


@pytest.mark.parametrize("inputs", [{"x": object()}, {"x": math.nan}])
def test_unit_key_refuses_values_without_one_json_form(inputs: dict) -> None:
    with pytest.raises(MiroError, match="plain JSON"):
        unit_key("train", inputs)


def test_unit_key_refuses_a_kind_that_is_not_a_plain_name() -> None:
    with pytest.raises(MiroError, match="lower case"):
        unit_key("Train/1", INPUTS)


# ---- records ----------------------------------------------------------------------------------------------
def test_register_creates_the_unit_once(store: Store) -> None:
    key = store.register("train", INPUTS)
    assert store.register("train", dict(reversed(list(INPUTS.items())))) == key  # a second sweep, same unit
    assert store.inputs(key) == {"kind": "train", "inputs": INPUTS}
    assert store.state(key) == "pending" and store.work_dir(key).is_dir()
    (store.unit_dir(key) / "inputs.json").write_text(json.dumps({"kind": "train", "inputs": {}}))
    with pytest.raises(MiroError, match="corrupt"):
        store.register("train", INPUTS)


def test_unregistered_unit_and_missing_outputs_are_refused_with_the_fix(store: Store) -> None:
    with pytest.raises(MiroError, match="register it first"):
        store.inputs("train-0000")
    key = store.register("train", INPUTS)
    with pytest.raises(MiroError, match="no outputs yet"):
        store.outputs(key)
    with pytest.raises(MiroError, match="unknown unit state"):
        store.set_state(key, "finished")


def test_status_summarises_every_unit(store: Store) -> None:
    a, b = store.register("train", INPUTS), store.register("score", {"of": "x"})
    store.set_state(a, "failed", traceback="Traceback ...\nValueError: loss is NaN")
    store.set_state(b, "cancelled", reason="cancelled by the sweep (job 7)")
    summary = store.status()
    assert [summary[a].state, summary[a].detail, summary[a].kind] == ["failed", "ValueError: loss is NaN", "train"]
    assert [summary[b].state, summary[b].detail] == ["cancelled", "cancelled by the sweep (job 7)"]
    events = [json.loads(line)["event"] for line in (store.unit_dir(a) / "events.jsonl").read_text().splitlines()]
    assert events == ["pending", "failed"]


def test_store_refuses_a_heartbeat_that_would_look_stale(tmp_path: Path) -> None:
    with pytest.raises(MiroError, match="stale_after_s"):
        Store(tmp_path, heartbeat_s=30, stale_after_s=40)


# ---- claims -----------------------------------------------------------------------------------------------
def test_claim_is_exclusive_and_released_by_its_owner_only(store: Store) -> None:
    key = store.register("train", INPUTS)
    assert store.try_claim(key, "slurm:7") and store.try_claim(key, "slurm:7")  # ours, and ours again (requeued)
    assert not store.try_claim(key, "slurm:8") and store.live_claim(key) == "slurm:7"
    store.release(key, "slurm:8")  # not theirs: kept
    assert store.live_claim(key) == "slurm:7"
    store.release(key, "slurm:7")
    assert store.live_claim(key) is None
    fake_claim(store, key, owner="slurm:99", host="other-node", pid=1)
    store.release(key, None)  # the scheduler says job 99 is gone
    assert store.live_claim(key) is None


def test_stale_claims_are_taken_over(store: Store) -> None:
    key = store.register("train", INPUTS)
    fake_claim(store, key, owner="slurm:1", host="other-node", pid=1, age_s=60)  # heartbeat stopped
    assert store.try_claim(key, "me") and store.live_claim(key) == "me"
    store.release(key, "me")
    dead = multiprocessing.get_context("fork").Process(target=int)
    dead.start()
    dead.join()
    fake_claim(store, key, owner="local:x", host=socket.gethostname(), pid=dead.pid or 0)  # fresh, but its process is gone
    assert store.try_claim(key, "me")
    events = (store.unit_dir(key) / "events.jsonl").read_text()
    assert events.count("claim broken") == 2


def test_breaking_a_claim_that_was_renewed_meanwhile_puts_it_back(store: Store) -> None:
    key = store.register("train", INPUTS)
    fake_claim(store, key, owner="slurm:2", host="other-node", pid=1)
    assert not store._break_claim(key, {"owner": "slurm:1", "host": "other-node", "pid": 1})  # judged on old content
    assert store.live_claim(key) == "slurm:2"


def test_heartbeat_keeps_a_claim_fresh(tmp_path: Path) -> None:
    store = Store(tmp_path, heartbeat_s=0.05, stale_after_s=0.5)
    key = store.register("train", INPUTS)
    assert store.try_claim(key, "me")
    with store.heartbeat(key):
        time.sleep(1.0)
        assert store.live_claim(key) == "me"
    time.sleep(0.7)
    assert store.live_claim(key) is None


def _claim_in_child(root: str, key: str, start: float, wins: multiprocessing.SimpleQueue, done: Any) -> None:
    time.sleep(max(0.0, start - time.time()))
    wins.put(Store(Path(root)).try_claim(key, current_owner()))
    done.wait()  # stay alive: a claim whose process has exited is stale, and may rightly be taken over


def test_concurrent_runners_get_one_claim(store: Store) -> None:
    key = store.register("train", INPUTS)
    context = multiprocessing.get_context("fork")
    wins = context.SimpleQueue()
    start = time.time() + 0.5
    done = context.Barrier(8)
    runners = [context.Process(target=_claim_in_child, args=(str(store.root), key, start, wins, done)) for _ in range(8)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    assert sorted(wins.get() for _ in runners) == [False] * 7 + [True]


# ---- run_unit ---------------------------------------------------------------------------------------------
def test_run_unit_records_outputs_and_skips_a_finished_unit(store: Store) -> None:
    key = store.register("train", INPUTS)
    unit = Unit("train", key, {"value": 3})
    assert run_unit(store, unit, "test_store:record_call") == "done"
    assert store.outputs(key) == {"value": 3, "calls": 1}
    record = store.record(key)
    assert record["state"] == "done" and record["attempt"] == 1 and store.live_claim(key) is None
    manifest = json.loads((store.unit_dir(key) / "manifest.json").read_text())
    assert manifest["unit"]["function"] == "test_store:record_call" and manifest["config"] == {"value": 3}
    # a second sweep sharing the unit (same inputs, so the same key) does not compute it again
    again = Unit("train", store.register("train", INPUTS), {"value": 3})
    assert run_unit(store, again, "test_store:record_call") == "done"
    assert (store.work_dir(key) / "calls.txt").read_text() == "x"


def test_run_unit_records_the_traceback_and_keeps_what_was_written(store: Store) -> None:
    key = store.register("train", INPUTS)
    with pytest.raises(ValueError, match="NaN"):
        run_unit(store, Unit("train", key), "test_store:broken")
    record = store.record(key)
    assert record["state"] == "failed" and "ValueError: loss is NaN at step 5" in record["traceback"]
    assert "in broken" in record["traceback"]  # the frame, not only the message
    assert (store.work_dir(key) / "checkpoint.txt").read_text() == "step 5"
    assert store.live_claim(key) is None


def test_run_unit_fails_a_function_that_returns_no_dict(store: Store) -> None:
    key = store.register("train", INPUTS)
    with pytest.raises(MiroError, match="must return a dict"):
        run_unit(store, Unit("train", key), "test_store:not_a_dict")
    assert store.state(key) == "failed"


def test_run_unit_records_an_interrupt_as_cancelled(store: Store) -> None:
    key = store.register("train", INPUTS)
    with pytest.raises(KeyboardInterrupt):
        run_unit(store, Unit("train", key), "test_store:interrupted")
    assert store.state(key) == "cancelled" and store.live_claim(key) is None


def test_run_unit_leaves_a_unit_another_runner_owns(store: Store) -> None:
    key = store.register("train", INPUTS)
    fake_claim(store, key, owner="slurm:5", host="other-node", pid=1)
    assert run_unit(store, Unit("train", key, {"value": 1}), "test_store:record_call") == "busy"
    assert not (store.work_dir(key) / "calls.txt").exists()


def test_run_unit_refuses_an_unregistered_unit(store: Store) -> None:
    with pytest.raises(MiroError, match="register it first"):
        run_unit(store, Unit("train", "train-0"), "test_store:record_call")


@pytest.mark.parametrize(("name", "message"), [
    ("test_store.record_call", 'written "module:function"'),
    ("no_such_module_xyz:f", "cannot import"),
    ("test_store:record_cal", 'did you mean "record_call"'),
])
def test_resolve_function_says_what_is_wrong(name: str, message: str) -> None:
    with pytest.raises(MiroError, match=message):
        resolve_function(name)
