"""Unit functions and helpers shared by the executor tests, local and SLURM. The functions live at module level
in an importable module because a job imports its function by name ("slurm.toy_units:count"), exactly as real
units are run."""
from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.store import Store
from harness.units import Unit
from miro.manifest import write_json_atomic

TESTS = Path(__file__).resolve().parent.parent
FUNCTIONS = {name: f"slurm.toy_units:{function}" for name, function in
             [("add", "add"), ("fail", "fail"), ("sleep", "sleep"), ("count", "count"), ("train", "train_tiny")]}


def importable_by_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let job processes (local subprocesses, SLURM jobs: both inherit the environment) import this module."""
    paths = [str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))


def toy_unit(store: Store, kind: str, depends_on: tuple[str, ...] = (), **params: Any) -> Unit:
    """A registered unit of `kind` (a key of FUNCTIONS) whose inputs are its parameters."""
    return Unit(kind, store.register(kind, {"params": params, "after": list(depends_on)}), params, depends_on)


def wait_for(predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    end = time.time() + timeout_s
    while not predicate():
        assert time.time() < end, f"still waiting after {timeout_s} s"
        time.sleep(0.1)


def add(work_dir: Path, a: int, b: int) -> dict[str, Any]:
    return {"sum": a + b, "work_dir": str(work_dir), "start_method": multiprocessing.get_start_method()}


def fail(work_dir: Path, message: str) -> dict[str, Any]:
    (work_dir / "partial.txt").write_text("written before the failure")
    raise RuntimeError(message)


def sleep(work_dir: Path, seconds: float) -> dict[str, Any]:
    time.sleep(seconds)
    return {"slept": seconds}


def count(work_dir: Path, to: int, step_s: float = 0.0) -> dict[str, Any]:
    """Count to `to`, one number every `step_s` seconds, checkpointing after each: rerun, it resumes.

    The checkpoint holds every number counted and how many times the function started, so a test sees both
    that nothing was lost or repeated and that the count was interrupted and resumed.
    """
    path = work_dir / "count.json"
    state = json.loads(path.read_text()) if path.is_file() else {"visited": [], "starts": 0}
    state["starts"] += 1
    write_json_atomic(path, state)
    while len(state["visited"]) < to:
        time.sleep(step_s)
        state["visited"].append(len(state["visited"]))
        write_json_atomic(path, state)
    return {"visited": state["visited"], "starts": state["starts"],
            "slurm_restarts": int(os.environ.get("SLURM_RESTART_COUNT", "0"))}


def train_tiny(work_dir: Path, steps: int) -> dict[str, Any]:
    """A few steps of the real trainer on the toy dataset; under DDP every rank trains its shard."""
    from core_fixtures import ToyDataset, tiny_config
    from miro.train import train

    torch.set_num_threads(1)
    last = train(tiny_config(steps=steps), ToyDataset(), work_dir, progress=False)
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    return {"checkpoint": str(last), "world_size": world}
