"""A unit of work, and the one way to run it: claim it in the store, call its function, record what happened.

A unit function is a module-level `fn(work_dir: Path, **params) -> dict` named "module:function", so that a
job pickles the name, not the code. It must be resumable: run again in the same work_dir after an
interruption, it continues from its own checkpoints (miro.train does). The runner never deletes anything in
the unit's folder, so a failed or interrupted attempt loses nothing it wrote.
"""
from __future__ import annotations

import importlib
import os
import socket
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import submitit
import torch.distributed
from submitit.core.utils import DelayedSubmission

from harness.store import Store
from miro.allocator import keep_freed_memory
from miro.distributed import DistInfo, default_device, init_distributed
from miro.errors import MiroError, unknown_name_error
from miro.manifest import build_manifest, write_json_atomic

# every unit kind and the one function that computes it ("module:function"; see resolve_function)
KINDS = {
    "data": "harness.datasources.shapes:prepare",  # the shapes world's whole preparation in one unit
    "annotate": "harness.tasks:annotate_shard",  # one array task of reward scoring
    "assemble": "harness.tasks:assemble_annotations",  # merge the shards, fit the bins
    "precompute": "harness.tasks:precompute_shard",  # one array task of VAE latents and T5 features
    "train": "harness.tasks:train_arm",
    "generate": "harness.tasks:generate_shard",  # one array task of an evaluation's generation and scoring
    "evaluate": "harness.tasks:evaluate_checkpoint",
    "tune": "harness.tasks:tune_checkpoint",
    "control": "harness.tasks:control_targets",
}


@dataclass(frozen=True)
class Unit:
    """One unit of work: `kind` and `key` as in the store, `params` for its function, the keys it needs done
    first, and `resources` overriding fields of the executor's SlurmResources (e.g. {"gpus_per_node": 8})."""

    kind: str
    key: str
    params: Mapping[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    resources: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlannedUnit:
    """A unit with what a person reads about it: a label and, where it has them, its arm, seed and step."""

    unit: Unit
    label: str
    arm: str | None = None
    seed: int | None = None
    step: int | None = None
    suite: str | None = None
    group: str | None = None  # a scorer group of annotation, whose resources it takes


def resolve_function(name: str) -> Callable[..., dict[str, Any]]:
    """The function named "module:function", or a one-line error saying what is wrong with the name."""
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise MiroError(f'unit function "{name}" must be written "module:function", e.g. "harness.tasks:train_arm"')
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise MiroError(f'cannot import "{module_name}" for unit function "{name}" ({error}): install the project (pip install -e .) or put it on PYTHONPATH') from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise unknown_name_error(f"function in {module_name}", attr, [n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n))])
    return function  # type: ignore[no-any-return]


def owner_token(cluster: str | None = None, job_id: str | None = None) -> str:
    """The name a runner claims units by: its scheduler job (the same across requeues), else its process.

    Written from inside a job (`current_owner`) and from outside it (the sweep, to free a dead job's claim).
    """
    if cluster == "slurm":
        return f"slurm:{job_id}"
    if cluster == "local":
        return f"local:{socket.gethostname()}:{job_id}"
    return f"process:{socket.gethostname()}:{os.getpid()}"  # the debug executor runs units in the sweep's process


def current_owner() -> str:
    try:
        env = submitit.JobEnvironment()
    except RuntimeError:  # not inside a submitit job
        return owner_token()
    return owner_token(env.cluster, env.job_id)


def job_context() -> dict[str, Any]:
    """Where this attempt runs: the scheduler's job id, SLURM's restart count and the job's log files."""
    try:
        env = submitit.JobEnvironment()
    except RuntimeError:  # not inside a submitit job
        return {}
    context: dict[str, Any] = {"job_id": env.job_id, "cluster": env.cluster,
                               "restarts": int(os.environ.get("SLURM_RESTART_COUNT", "0"))}
    if "SUBMITIT_FOLDER" in os.environ:  # the debug executor runs in this process and has no log files
        context.update(stdout=str(env.paths.stdout), stderr=str(env.paths.stderr))
    return context


def _claim(store: Store, key: str, owner: str) -> str:
    """"run" when `owner` now owns the unit, "done" when it is finished, "busy" when another runner has it."""
    if store.state(key) == "done":
        return "done"
    if not store.try_claim(key, owner):
        return "busy"
    if store.state(key) == "done":  # finished between the check and the claim
        store.release(key, owner)
        return "done"
    return "run"


def _agree(verdict: str, dist: DistInfo) -> str:
    """Every rank takes rank 0's verdict, so that all run the function or none does."""
    if dist.world == 1:
        return verdict
    box = [verdict]
    torch.distributed.broadcast_object_list(box, src=0)
    return str(box[0])


def _run_and_record(store: Store, unit: Unit, fn: str, function: Callable[..., dict[str, Any]], owner: str, dist: DistInfo) -> str:
    key, context = unit.key, job_context()
    attempt = store.attempts(key) + 1
    store.set_state(key, "running", owner=owner, attempt=attempt, **context)
    write_json_atomic(store.unit_dir(key) / "manifest.json", build_manifest(
        dict(unit.params), seed=unit.params.get("seed"), device=default_device(dist),  # type: ignore[arg-type]  # None: a unit with no seed
        extra={"unit": {"kind": unit.kind, "key": key, "function": fn, "depends_on": list(unit.depends_on)},
               "job": context, "world_size": dist.world}))
    try:
        with store.heartbeat(key):
            outputs = function(store.work_dir(key), **unit.params)
            if not isinstance(outputs, dict):
                raise MiroError(f"unit function {fn} returned a {type(outputs).__name__}; it must return a dict of outputs")
            store.write_outputs(key, outputs)
    except KeyboardInterrupt:
        store.set_state(key, "cancelled", reason="interrupted (SIGINT)", attempt=attempt, **context)
        store.release(key, owner)
        raise
    except Exception:
        store.set_state(key, "failed", traceback=traceback.format_exc(), attempt=attempt, **context)
        store.release(key, owner)
        raise
    # SystemExit (submitit requeues after a time limit or preemption) keeps the claim for the requeued job
    store.set_state(key, "done", attempt=attempt, **context)
    store.release(key, owner)
    return "done"


def run_unit(store: Store, unit: Unit, fn: str) -> str:
    """Run `unit` with `fn` unless it is done; returns "done", or "busy" when another live runner owns it.

    Under torch DDP (WORLD_SIZE > 1) every process calls this: rank 0 claims and records, all ranks call the
    function. A failure is recorded with its traceback and raised again, so the scheduler also sees it failed.
    """
    function = resolve_function(fn)
    store.inputs(unit.key)  # refuses a unit that was never registered
    dist, owner = init_distributed(), current_owner()
    try:
        verdict = _agree(_claim(store, unit.key, owner) if dist.is_main else "", dist)
        if verdict != "run":
            return verdict
        if not dist.is_main:
            function(store.work_dir(unit.key), **unit.params)
            return "done"
        return _run_and_record(store, unit, fn, function, owner, dist)
    finally:
        if dist.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


@dataclass(frozen=True)
class UnitJob(submitit.helpers.Checkpointable):
    """What an executor runs for one unit.

    On a time limit or a preemption submitit calls `checkpoint`, which requeues this very call; the unit
    function then resumes from its own checkpoints in work/, so nothing before its last checkpoint is lost.
    With several tasks (tasks_per_node x nodes > 1) each task exports the torch.distributed variables first.
    """

    store: Store
    unit: Unit
    fn: str

    def __call__(self) -> str:
        keep_freed_memory()  # for this process (a warm worker runs several units: setting it again changes nothing)
        if submitit.JobEnvironment().num_tasks > 1:
            # CUDA_VISIBLE_DEVICES is left whole: miro.distributed picks cuda:LOCAL_RANK itself
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        return run_unit(self.store, self.unit, self.fn)

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        self.store.log_event(self.unit.key, "requeued", **job_context())
        return super().checkpoint(*args, **kwargs)
