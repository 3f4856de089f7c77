"""Executors: run units on this machine (local: warm worker processes, harness.workers), in this very process (debug)
or on SLURM (submitit).

`submit_units` submits every unit whose dependencies are done, packing units that ask for the same resources
into one job array (one sbatch call, one scheduler entry: annotation and scoring shards), then `UnitRun.wait`
polls until every unit is done, failed, cancelled or blocked (a dependency failed); `max_running` caps the
jobs out at once (on one machine: how many units run side by side). Units already done in the
store are skipped, and a unit another live runner has claimed (say, a second sweep that shares it) is watched
rather than submitted again. By default a failure does not stop independent units; `fail_fast=True` cancels
the rest. `retry` runs only the units that failed.

Polling does not hammer the scheduler: each poll makes one `sacct` call for every outstanding job at once
(submitit's SlurmInfoWatcher batches the ids), polls are `poll_s` apart (default 30 s on SLURM, never under
1 s), and cancelling many jobs is one `scancel`. Units with several tasks (tasks_per_node x nodes > 1) run
one process per task, each joining torch.distributed through the variables `UnitJob` exports.

The debug executor runs each unit in this process when it is polled and opens pdb on a failure: use it to
step through a unit, not to run a sweep.

Trust: a job runs what submitit pickled into the jobs folder, so whoever can write that folder can run code
as the jobs' user; `make_executor` refuses a jobs folder that others may write. The runner itself unpickles
nothing from it: it learns how each unit ended from the store's JSON records and the jobs' text logs.
(A group-writable folder is allowed: a cluster project's group is trusted with its jobs.)
"""
from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

import submitit
from submitit.local.debug import DebugJob
from submitit.slurm.slurm import SlurmJob, _make_sbatch_string

from harness.eta import TimeLeft
from harness.progress import Display
from harness.store import FINAL_STATES, Store
from harness.units import Unit, UnitJob, owner_token, resolve_function
from harness.workers import CANCEL_GRACE_S, WarmExecutor
from miro.errors import MiroError, did_you_mean, unknown_name_error

EXECUTOR_KINDS = ("local", "debug", "slurm")
DEFAULT_POLL_S = {"slurm": 30.0, "local": 1.0, "debug": 1.0}
MIN_POLL_S = 1.0
LOG_TAIL_LINES = 200  # of a job's stderr, searched for the traceback of a unit that could not record its failure
PROJECT_ROOT = Path(__file__).resolve().parent.parent  # what a job's python must find on its path


@dataclass(frozen=True)
class SlurmResources:
    """What one job asks for. Units override fields through `Unit.resources`; the local executor uses
    time_min, tasks_per_node, gpus_per_node and signal_delay_s; debug runs one process with no limits."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int = 60
    nodes: int = 1
    tasks_per_node: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    mem_gb: float | None = None
    constraint: str | None = None
    array_parallelism: int = 256  # most array tasks running at once
    signal_delay_s: int = 90  # USR2 this long before the time limit: checkpoint and requeue
    additional_parameters: tuple[tuple[str, Any], ...] = ()  # other sbatch options, e.g. {"exclusive": True}

    def __post_init__(self) -> None:
        if isinstance(self.additional_parameters, Mapping):  # accept a dict, keep a hashable form
            object.__setattr__(self, "additional_parameters", tuple(sorted(self.additional_parameters.items())))
        for name in ("time_min", "nodes", "tasks_per_node", "cpus_per_task", "array_parallelism"):
            if getattr(self, name) < 1:
                raise MiroError(f"SlurmResources.{name} = {getattr(self, name)} must be at least 1")
        if self.gpus_per_node < 0 or (self.mem_gb is not None and self.mem_gb <= 0):
            raise MiroError("SlurmResources.gpus_per_node must be >= 0 and mem_gb > 0 (or None for the partition default)")
        if self.time_min * 60 - self.signal_delay_s <= 60:
            raise MiroError(f"SlurmResources: time_min * 60 - signal_delay_s = {self.time_min * 60 - self.signal_delay_s} s must exceed 60 s "
                            "(SLURM may signal up to 60 s early; less makes every restart time out at once): raise time_min or lower signal_delay_s")

    def override(self, changes: Mapping[str, Any]) -> SlurmResources:
        """These resources with a unit's overrides, refusing unknown field names."""
        names = [f.name for f in fields(self)]
        for name in changes:
            if name not in names:
                raise unknown_name_error("resource", name, names)
        return replace(self, **changes)


def _slurm_parameters(r: SlurmResources, name: str) -> dict[str, Any]:
    """SlurmExecutor's parameters (sbatch options) for `r`; None leaves an option to the cluster's default."""
    return {
        "job_name": name, "partition": r.partition, "account": r.account, "qos": r.qos, "time": r.time_min,
        "nodes": r.nodes, "ntasks_per_node": r.tasks_per_node, "gpus_per_node": r.gpus_per_node or None,
        "cpus_per_task": r.cpus_per_task, "mem": None if r.mem_gb is None else f"{round(r.mem_gb * 1024)}M",
        "constraint": r.constraint, "array_parallelism": r.array_parallelism, "signal_delay_s": r.signal_delay_s,
        "additional_parameters": dict(r.additional_parameters) or None,
        "setup": [f"export PYTHONPATH={shlex.quote(str(PROJECT_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}"],
    }


def render_sbatch(resources: SlurmResources, folder: Path | str, *, name: str = "miro", array_size: int | None = None) -> str:
    """The exact sbatch script submitit would submit for these resources (for --dry-run; needs no cluster)."""
    command = f"{shlex.quote(sys.executable)} -u -m submitit.core._submit {shlex.quote(str(Path(folder).absolute()))}"
    return _make_sbatch_string(command=command, folder=Path(folder).absolute(), map_count=array_size,
                               **_slurm_parameters(resources, name))


Job = TypeVar("Job")  # what goes out as one array task: a unit, or a planned unit in a dry run
SLURM_DEFAULT_MAX_ARRAY_SIZE = 1001  # slurm.conf's default MaxArraySize: array indices 0..1000


def cluster_max_array_size() -> int:
    """The cluster's MaxArraySize (sbatch refuses an array index at or above it), from `scontrol show config`;
    SLURM's default where that cannot be read (a dry run on a laptop)."""
    try:
        config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return SLURM_DEFAULT_MAX_ARRAY_SIZE
    found = re.search(r"^MaxArraySize\s*=\s*(\d+)", config, re.MULTILINE)
    return int(found.group(1)) if found else SLURM_DEFAULT_MAX_ARRAY_SIZE


def array_chunks(units: Sequence[Job], size: int | None) -> list[Sequence[Job]]:
    """Units in consecutive job arrays of at most `size` tasks (None: one array)."""
    size = size or max(len(units), 1)
    return [units[first:first + size] for first in range(0, len(units), size)]


@dataclass(frozen=True)
class Executor:
    """A submitit executor (or, local, harness.workers' warm one), what kind it is, and the resources a unit gets
    unless it overrides them. `max_array_size`: the most tasks one job array may have (the SLURM cluster's
    MaxArraySize; None: no limit), so that the paper's 5,120 generation shards go out as several arrays instead of
    being refused."""

    kind: str
    inner: submitit.Executor | WarmExecutor
    resources: SlurmResources
    max_array_size: int | None = None

    def parameters(self, resources: SlurmResources, name: str) -> dict[str, Any]:
        return job_parameters(self.kind, resources, name)


def job_parameters(kind: str, resources: SlurmResources, name: str) -> dict[str, Any]:
    """The submitit parameters of one job of executor `kind`, refusing what that executor cannot run."""
    if kind == "slurm":
        return _slurm_parameters(resources, name)
    if resources.nodes > 1 or (kind == "debug" and resources.tasks_per_node > 1):
        raise MiroError(f"the {kind} executor runs on one node{' in one process' if kind == 'debug' else ''}: "
                        f"lower nodes / tasks_per_node, or use the slurm executor")
    if kind == "debug":
        return {}
    return {"timeout_min": resources.time_min, "tasks_per_node": resources.tasks_per_node,
            "gpus_per_node": resources.gpus_per_node, "signal_delay_s": resources.signal_delay_s}


def check_units(kind: str, resources: SlurmResources, store: Store, units: Sequence[Unit], functions: Mapping[str, str]) -> None:
    """Refuse a mis-specified run before anything is submitted (also what a sweep's --dry-run checks)."""
    keys = {unit.key for unit in units}
    if len(keys) != len(units):
        raise MiroError("submit_units got the same unit key twice: deduplicate the units first")
    for unit in units:
        if unit.kind not in functions:
            raise MiroError(f'no function for unit kind "{unit.kind}"{did_you_mean(unit.kind, functions)}: '
                            f'pass functions={{"{unit.kind}": "module:function"}}')
        resolve_function(functions[unit.kind])
        store.inputs(unit.key)
        job_parameters(kind, resources.override(unit.resources), unit.kind)
        for dep in unit.depends_on:
            if dep not in keys and store.state(dep) != "done":
                raise MiroError(f"unit {unit.key} depends on {dep}, which is neither in this run nor done in the store")


def make_executor(kind: str, folder: Path | str, resources: SlurmResources | None = None, *, max_timeouts: int = 20,
                  warm: bool = True) -> Executor:
    """An executor writing its job files and logs under `folder`; a job requeued on timeout more than
    `max_timeouts` times is given up (training in slices of a time limit needs several). Local units run in warm
    workers (harness.workers) unless `warm` is False: then each gets a fresh process, as on SLURM."""
    resources = resources or SlurmResources()
    if kind not in EXECUTOR_KINDS:
        raise unknown_name_error("executor", kind, EXECUTOR_KINDS)
    if kind == "slurm" and shutil.which("sbatch") is None:
        raise MiroError("executor slurm: sbatch is not on PATH; run on a SLURM login node (or start the test cluster: scripts/slurm/start.sh), or use --executor local")
    check_private(Path(folder))
    inner: submitit.Executor | WarmExecutor
    if kind == "debug":
        inner = submitit.DebugExecutor(folder)
    elif kind == "local":
        inner = submitit.LocalExecutor(folder, max_num_timeout=max_timeouts)
        inner = WarmExecutor(Path(folder), inner, max_timeouts) if warm else inner
    else:
        inner = submitit.SlurmExecutor(folder, max_num_timeout=max_timeouts)
    executor = Executor(kind, inner, resources, cluster_max_array_size() if kind == "slurm" else None)
    inner.update_parameters(**executor.parameters(resources, "miro"))
    return executor


def check_private(folder: Path) -> None:
    """Refuse a jobs folder (or its nearest existing parent) that any user may write."""
    existing = next((p for p in (folder, *folder.absolute().parents) if p.exists()), None)
    if existing is None or existing != folder and existing.stat().st_mode & stat.S_ISVTX:  # e.g. /tmp: sticky, safe
        return
    mode = existing.stat().st_mode
    if mode & stat.S_IWOTH:
        raise MiroError(f"jobs folder {existing} is writable by every user (mode {stat.filemode(mode)}): anyone who can write "
                        f"it can run code in your jobs; run chmod o-w {existing}, or choose another --root")


# --------------------------------------------------------------------------------------------------
# looking at jobs
# --------------------------------------------------------------------------------------------------
def _finished(jobs: Sequence[submitit.Job[Any]]) -> list[bool]:
    """Which jobs have ended, with at most one scheduler query for all of them."""
    if any(isinstance(job, SlurmJob) for job in jobs):
        SlurmJob.watcher.update()  # one sacct call for every registered, unfinished job
    return [job.task(0).paths.result_pickle.exists() or job.watcher.is_done(job.job_id, mode="cache")
            if isinstance(job, SlurmJob) else job.done() for job in jobs]


def _outcome(job: submitit.Job[Any]) -> str:
    """How a job ended that left its unit unrecorded: "error: <traceback>" or "no result" (killed).

    Read from the job's own text log, never from its result pickle: the runner unpickles nothing from the
    jobs folder, so a file planted there cannot run code in the runner. (What it trusts instead is the
    store's JSON, written by the unit's runner: see `UnitRun._settle`.) The debug executor ran the unit in
    this very process, so its outcome is the call's own.
    """
    if isinstance(job, DebugJob):
        try:
            return str(job.result())
        except Exception as error:
            return f"error: {error}"
    log = job.task(0).paths.stderr
    try:
        lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return "no result"
    start = max((i for i, line in enumerate(lines) if line.startswith("Traceback")), default=None)
    return "error: " + "\n".join(lines[start:]) if start is not None else "no result"


def _scheduler_state(job: submitit.Job[Any]) -> str:
    return job.watcher.get_state(job.job_id, mode="cache") if isinstance(job, SlurmJob) else job.state


def _cancel_jobs(jobs: Sequence[submitit.Job[Any]]) -> None:
    slurm_ids = [job.job_id for job in jobs if isinstance(job, SlurmJob)]
    if slurm_ids:
        subprocess.run(["scancel", *slurm_ids], check=False)  # one call for all of them
    for job in jobs:
        if not isinstance(job, SlurmJob):
            job.cancel(check=False)


# --------------------------------------------------------------------------------------------------
# a run of units
# --------------------------------------------------------------------------------------------------
class UnitRun:
    """Units being run by one executor; `states` holds each unit's final state once it has one."""

    def __init__(self, executor: Executor, store: Store, units: Sequence[Unit], functions: Mapping[str, str], *,
                 fail_fast: bool = False, max_running: int | None = None, poll_s: float | None = None, progress: bool = True) -> None:
        if max_running is not None and max_running < 1:
            raise MiroError(f"max_running = {max_running} must be at least 1 (or None for no limit)")
        self.executor, self.store, self.fail_fast = executor, store, fail_fast
        self.max_running = max_running
        self.poll_s = max(MIN_POLL_S, DEFAULT_POLL_S[executor.kind] if poll_s is None else poll_s)
        check_units(executor.kind, executor.resources, store, units, functions)
        self.units = {unit.key: unit for unit in units}
        self.functions = dict(functions)
        self.jobs: dict[str, submitit.Job[Any]] = {}
        self.states: dict[str, str] = {}
        self.watched: set[str] = set()  # units another runner was seen working on
        time_left = TimeLeft(store, units, max_running or len(units))
        # what `wait` shows (harness.progress); a sweep replaces it with one that names its units
        self.display = Display(store, units, {}, lambda: time_left.estimate().text) if progress else None
        self.every_poll: Callable[[], None] | None = None  # what the run's owner does at each poll (a sweep: its TensorBoard links)
        self.stopped = False

    # ---- one step: settle ended jobs, then submit what is ready ----------------------------------
    def step(self) -> bool:
        """Poll once and submit what became ready; True when every unit has a final state."""
        keys = list(self.jobs)
        for key, ended in zip(keys, _finished([self.jobs[k] for k in keys])):
            if ended and key in self.jobs:  # fail_fast may have cancelled it meanwhile
                self._settle(key, self.jobs.pop(key))
        if not self.stopped:
            ready = self._ready()
            self._submit(ready if self.max_running is None else ready[:max(0, self.max_running - len(self.jobs))])
        if not self.jobs and not self._watching():
            for key in self.units.keys() - self.states.keys():
                self.states[key] = "blocked"  # a dependency failed, was cancelled, or fail_fast stopped the run
        return len(self.states) == len(self.units)

    def _watching(self) -> bool:
        return any(self.store.live_claim(key) for key in self.units.keys() - self.states.keys())

    def _ready(self) -> list[Unit]:
        ready = []
        for key, unit in self.units.items():
            if key in self.states or key in self.jobs:
                continue
            state = self.store.state(key)
            if state == "done" or (key in self.watched and state in FINAL_STATES and not self.store.live_claim(key)):
                self.states[key] = state  # done, or finished by the other runner we watched
            elif any(self.states[dep] != "done" for dep in unit.depends_on if dep in self.states):
                self.states[key] = "blocked"
            elif all(self.store.state(dep) == "done" for dep in unit.depends_on):
                if self.store.live_claim(key):
                    self.watched.add(key)
                else:
                    ready.append(unit)
        return ready

    def _submit(self, units: list[Unit]) -> None:
        """One job array per group of units asking for the same resources (several where the group is larger
        than the cluster's largest array)."""
        groups: dict[SlurmResources, list[Unit]] = {}
        for unit in units:
            groups.setdefault(self.executor.resources.override(unit.resources), []).append(unit)
        inner = self.executor.inner
        for resources, group in groups.items():
            kinds = sorted({unit.kind for unit in group})
            inner.update_parameters(**self.executor.parameters(resources, kinds[0] if len(kinds) == 1 else "miro"))
            for unit in group:  # before submitting: a fast job must not find its "running" overwritten
                self.store.set_state(unit.key, "pending", executor=self.executor.kind)
            jobs = []
            for chunk in array_chunks(group, self.executor.max_array_size):
                try:
                    with contextlib.redirect_stderr(io.StringIO()), inner.batch():  # submitit prints sbatch's refusal too
                        jobs += [inner.submit(UnitJob(self.store, unit, self.functions[unit.kind])) for unit in chunk]
                except submitit.core.utils.FailedJobError as error:  # sbatch refused: the controller is down, a bad option
                    said = next((line for line in str(error).splitlines() if line.strip()), "no message")
                    raise MiroError(f"{self.executor.kind} refused to take the {', '.join(kinds)} jobs ({said}); check the cluster "
                                    "(sinfo) and the job options, then run the same command again: nothing finished is lost") from None
            for unit, job in zip(group, jobs, strict=True):
                self.jobs[unit.key] = job
                self.store.log_event(unit.key, "submitted", job_id=job.job_id, executor=self.executor.kind)

    def _settle(self, key: str, job: submitit.Job[Any]) -> None:
        """Record the end of a job whose unit the runner could not record itself (killed, or failed early)."""
        state = self.store.state(key)
        if state not in FINAL_STATES and self.store.live_claim(key) not in (None, owner_token(self.executor.kind, job.job_id)):
            self.watched.add(key)  # the job found another runner on it ("busy"): watch, take over if its claim goes stale
            return
        if state not in FINAL_STATES:
            outcome, scheduler = _outcome(job), _scheduler_state(job)
            where = f"job {job.job_id} ({self.executor.kind}) ended {scheduler} with {outcome.splitlines()[0]}; logs: {job.task(0).paths.stderr}"
            if scheduler.upper().startswith("CANCELLED"):
                self.store.set_state(key, "cancelled", reason=where, job_id=job.job_id)
            else:  # killed (time limit, memory, node failure) or failed before the runner could record it
                error = {"traceback": outcome.removeprefix("error: ")} if outcome.startswith("error: ") else {}
                self.store.set_state(key, "failed", reason=where, job_id=job.job_id, **error)
            self._free(key, job)
            state = self.store.state(key)
        self.states[key] = state
        if state == "failed" and self.fail_fast:
            self.cancel()

    def _free(self, key: str, job: submitit.Job[Any]) -> None:
        """Drop the claim of a job the scheduler says is gone (or any stale one); leave another live runner's."""
        if self.store.live_claim(key) in (None, owner_token(self.executor.kind, job.job_id)):
            self.store.release(key, None)

    # ---- public -----------------------------------------------------------------------------------
    def wait(self) -> dict[str, str]:
        """Poll every `poll_s` until every unit is done, failed, cancelled or blocked; returns key -> state."""
        with self.display or nullcontext():
            while not self.step():
                if self.display:
                    self.display.update(self.states, self.jobs.keys())
                if self.every_poll:
                    self.every_poll()
                time.sleep(self.poll_s)
            if self.display:
                self.display.update(self.states, self.jobs.keys())
        return dict(self.states)

    def stop(self) -> tuple[int, int]:
        """Submit nothing more and stop what runs here: each local unit is sent SIGINT, records itself cancelled at
        once (its writes are atomic: nothing is left half-written; training resumes from its last checkpoint) and
        is killed if it has not stopped within harness.workers.CANCEL_GRACE_S. SLURM jobs go on and record
        themselves; a rerun watches them. Returns (units stopped, units still running on the cluster)."""
        self.stopped = True
        if self.executor.kind == "slurm":
            return 0, len(self.jobs)
        stopped = len(self.jobs)
        self.cancel()
        if isinstance(self.executor.inner, WarmExecutor):
            self.executor.inner.close(CANCEL_GRACE_S)
        return stopped, 0

    def cancel(self, keys: Sequence[str] | None = None) -> None:
        """Cancel these units' jobs (default: all, and submit nothing more); their store state becomes cancelled."""
        if keys is None:
            self.stopped = True
        chosen = [key for key in (self.jobs if keys is None else keys) if key in self.jobs]
        jobs = [self.jobs.pop(key) for key in chosen]
        _cancel_jobs(jobs)
        for key, job in zip(chosen, jobs):
            if self.store.state(key) not in FINAL_STATES:
                self.store.set_state(key, "cancelled", reason=f"cancelled by the sweep (job {job.job_id})", job_id=job.job_id)
            self._free(key, job)
            self.states[key] = self.store.state(key)


def submit_units(executor: Executor, store: Store, units: Sequence[Unit], functions: Mapping[str, str], *,
                 fail_fast: bool = False, max_running: int | None = None, poll_s: float | None = None,
                 progress: bool = True) -> UnitRun:
    """Check the units, submit those that are ready, and return the run (call `.wait()` for the outcome).

    `functions` maps each unit kind to its "module:function". Units must be registered in `store`.
    """
    run = UnitRun(executor, store, units, functions, fail_fast=fail_fast, max_running=max_running, poll_s=poll_s,
                  progress=progress)
    run.step()
    return run


def retry(executor: Executor, store: Store, units: Sequence[Unit], functions: Mapping[str, str], **options: Any) -> UnitRun:
    """Submit again only those of `units` that failed."""
    return submit_units(executor, store, [unit for unit in units if store.state(unit.key) == "failed"], functions, **options)
