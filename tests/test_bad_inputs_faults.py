"""Faults from outside: leftovers of killed writes, a moved store, damaged store records, a torn claim, a
torn training log. Each is recognised at once, cleaned or reported on its own unit, and loses nothing."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.store import Store
from miro.checkpoint import checkpoint_dirs, save_checkpoint
from miro.files import atomic_path, remove_leftovers, write_json_atomic
from miro.run_log import trim_log


def dead_pid() -> int:
    """The id of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_killed_writers_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    host = socket.gethostname()
    dead = tmp_path / f".step-0000010.tmp-{host}-{dead_pid()}"
    dead.mkdir()
    (dead / "ema.safetensors").write_bytes(b"half")
    png = tmp_path / f".0003.png.tmp-{host}-{dead_pid()}"
    png.write_bytes(b"half")
    mine = tmp_path / f".status.json.tmp-{host}-{os.getpid()}"
    mine.write_text("{}")
    other_host = tmp_path / f".status.json.tmp-elsewhere-{dead_pid()}"  # another host's writer may be alive
    other_host.write_text("{}")
    finished = tmp_path / "0003.png"
    finished.write_bytes(b"whole")
    assert sorted(remove_leftovers(tmp_path)) == sorted([dead, png])
    assert mine.exists() and other_host.exists() and finished.read_bytes() == b"whole"


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    import errno

    target = tmp_path / "summary.json"
    write_json_atomic(target, {"old": 1})
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert json.loads(target.read_text()) == {"old": 1} and [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_the_next_checkpoint_save_removes_the_folder_of_a_killed_save(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    root.mkdir()
    killed = root / f".step-0000010.tmp-{socket.gethostname()}-{dead_pid()}"
    killed.mkdir()
    (killed / "train.safetensors").write_bytes(b"x" * 1000)
    weights = {"w": torch.zeros(2)}
    save_checkpoint(tmp_path, 10, train=weights, ema=weights, optimizer={}, state={}, manifest={})
    assert [p.name for p in root.iterdir()] == ["step-0000010"] and checkpoint_dirs(tmp_path) == [root / "step-0000010"]


def test_a_resumed_log_drops_the_steps_after_the_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"step": s}) + "\n" for s in (5, 10, 15)) + '{"step": 2')  # killed mid-line
    trim_log(log, 10)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [5, 10]


def test_a_moved_store_still_reads(tmp_path: Path) -> None:
    store = Store(tmp_path / "a" / "store")
    key = store.register("train", {"x": 1})
    store.write_outputs(key, {"run_dir": str(store.work_dir(key) / "run"), "seconds": 3.0, "files": [str(store.root / "units")]})
    store.set_state(key, "done")
    text = (store.unit_dir(key) / "outputs.json").read_text()
    assert str(tmp_path) not in text  # nothing in the store names where it lives
    shutil.move(tmp_path / "a", tmp_path / "b")
    moved = Store(tmp_path / "b" / "store")
    assert moved.register("train", {"x": 1}) == key and moved.state(key) == "done"
    outputs = moved.outputs(key)
    assert moved.path(outputs["run_dir"]) == moved.work_dir(key) / "run" and outputs["seconds"] == 3.0


def test_a_damaged_record_shows_on_its_own_unit_and_blocks_nothing_else(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    good, bad, garbage = (store.register("evaluate", {"n": n}) for n in range(3))
    store.set_state(good, "done")
    (store.unit_dir(bad) / "status.json").write_text('{"state": "do')  # truncated from outside
    (store.unit_dir(garbage) / "inputs.json").write_bytes(b"\x00\xff garbage")
    status = store.status()
    assert status[good].state == "done"
    assert status[bad].state == "failed" and "status.json is corrupt" in str(status[bad].detail) and "--retry" in str(status[bad].detail)
    assert status[garbage].kind == "evaluate"
    assert store.register("evaluate", {"n": 2}) == garbage and store.inputs(garbage)["inputs"] == {"n": 2}  # rewritten from its key
    store.set_state(bad, "pending")  # --retry writes the record again
    assert store.state(bad) == "pending"
    (store.unit_dir(good) / "outputs.json").write_text("[1, 2")  # a finished unit whose outputs were damaged
    assert store.state(good) == "failed" and "outputs.json is corrupt" in str(store.status()[good].detail)


def test_a_half_written_claim_is_stale_at_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    key = store.register("train", {"x": 1})
    (store.unit_dir(key) / "claim.json").write_text('{"owner": "slurm:12')  # torn: claims are linked in whole, so damaged
    assert store.live_claim(key) is None
    assert store.try_claim(key, "me") and store.live_claim(key) == "me"
    assert not store.try_claim(key, "someone else")
    assert [p.name for p in store.unit_dir(key).iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_a_jobs_folder_others_may_write_is_refused(tmp_path: Path) -> None:
    from harness.executors import make_executor
    from miro.errors import MiroError

    shared = tmp_path / "jobs"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(MiroError, match="writable by every user.*chmod o-w"):
        make_executor("local", shared / "sweep")
    shared.chmod(0o775)  # a project group may share it
    make_executor("local", shared / "sweep")


def test_sweep_status_reads_past_damaged_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.sweep import main

    main(["smoke", "--root", str(tmp_path), "--status"])  # registers the plan's units
    units = sorted((tmp_path / "store" / "units").iterdir())
    train = next(u for u in units if u.name.startswith("train-"))
    (train / "status.json").write_text('{"state": ')
    data = next(u for u in units if u.name.startswith("data-"))
    (data / "inputs.json").write_text("garbage")
    capsys.readouterr()
    main(["smoke", "--root", str(tmp_path), "--status"])
    out = capsys.readouterr().out
    assert "status.json is corrupt or truncated" in out and "--retry" in out  # the damaged unit, in the table
    assert "blocked" in out  # its evaluations wait on it; nothing else is stopped
    assert json.loads((data / "inputs.json").read_text())["kind"] == "data"  # rewritten from its key


def test_a_slurm_controller_that_cannot_be_reached_is_one_line_and_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from harness.sweep import main

    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("sbatch", "scontrol"):  # what they say when slurmctld is down
        (fake / tool).write_text("#!/bin/sh\necho 'sbatch: error: Batch job submission failed: Unable to contact slurm controller "
                                 "(connect failure)' >&2\nexit 1\n")
        (fake / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        main(["smoke", "--root", str(tmp_path / "runs"), "--executor", "slurm", "--poll-s", "0.1"])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("error: slurm refused to take the data jobs (sbatch: error: Batch job submission failed: Unable to contact slurm")
    assert "run the same command again" in err
    assert not any(status.state == "done" for status in Store(tmp_path / "runs" / "store").status().values())
