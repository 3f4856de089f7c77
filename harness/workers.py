"""Warm workers: the local executor runs units in processes that stay alive from one unit to the next.

A fresh process per unit spends seconds importing torch, transformers and torchmetrics and loading the same
models again, which dominates a small study. A worker pays the imports once and keeps what it loaded
(miro.warm's cache, keyed by the files' identity) for the units after. Isolation where it matters: a worker
whose unit failed or was cancelled, or whose memory grew past its share of the machine, is replaced by a
fresh process before the next unit, and a unit with several tasks (DDP) or GPUs still gets processes of its
own from submitit's local executor, as every SLURM job does.

To the rest of the harness a unit in a worker looks like a submitit local job: the same environment (it claims
its unit as local:<host>:<job id>), its own log files <job id>_0_log.out/.err in the jobs folder, SIGUSR2 near
its time limit (the unit stops, is requeued with its job id and resumes from its checkpoint), SIGINT to cancel
it. Workers sit in their own process group, so a Ctrl-C in the sweep's terminal reaches the runner alone, which
decides what the units do (harness.executors.UnitRun.stop). A runner killed outright leaves each worker to
finish and record its unit, then exit: the next run finds the unit done or watches it.
"""
from __future__ import annotations

import atexit
import itertools
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import JobPaths

JOB_NUMBERS = itertools.count(1)  # a job id names one unit run of this process, whichever pool runs it
CANCEL_GRACE_S = 20.0  # a unit told to stop (SIGINT) that is still running after this is killed
MEMORY_SHARE = 0.5  # the workers together may keep this share of the machine's memory between units


class TimeLimit(BaseException):
    """Raised in a worker's unit at SIGUSR2 (its time limit is near): not an error, so the unit keeps its claim."""


def _time_limit(signum: int, frame: Any) -> None:
    raise TimeLimit()


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def _job_environment(folder: Path, job_id: str) -> Iterator[JobPaths]:
    """What submitit's local executor gives a job: its variables, and fds 1 and 2 on its own log files."""
    paths = JobPaths(folder, job_id=job_id, task_id=0)
    os.environ.update(SUBMITIT_EXECUTOR="local", SUBMITIT_FOLDER=str(folder), SUBMITIT_LOCAL_JOB_ID=job_id,
                      SUBMITIT_LOCAL_NTASKS="1", SUBMITIT_LOCAL_JOB_NUM_NODES="1", SUBMITIT_LOCAL_NODEID="0",
                      SUBMITIT_LOCAL_GLOBALID="0", SUBMITIT_LOCAL_LOCALID="0")
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with paths.stdout.open("a") as out, paths.stderr.open("a") as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            yield paths
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _serve(conn: Connection, folder: str) -> None:
    """A worker's life: run the units it is sent, one at a time, and say how each ended; exit when the runner is gone."""
    from miro.warm import keep_models

    os.setpgrp()  # out of the terminal's foreground group: a Ctrl-C there reaches the runner alone
    # A spawned process inherits "spawn" as its default start method, so every DataLoader of a unit (decoders,
    # training readers) would start its workers by importing torch again, seconds each; a unit gets the
    # default a fresh process has, as in a cold run.
    multiprocessing.set_start_method(None, force=True)
    keep_models()
    signal.signal(signal.SIGUSR2, _time_limit)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    while True:
        try:
            job_id, job = conn.recv()
        except (EOFError, OSError):
            return
        with _job_environment(Path(folder), job_id):
            try:
                outcome = f"finished {job()}"
            except TimeLimit:
                job.checkpoint()  # the unit's requeue event, as submitit records it
                outcome = "requeue"
            except KeyboardInterrupt:
                outcome = "cancelled"
            except BaseException:
                traceback.print_exc()  # into the unit's log, where the runner looks for why a job ended
                outcome = "failed"
        try:
            conn.send((job_id, outcome, _resident_bytes()))
        except (BrokenPipeError, OSError):
            return


@dataclass
class WarmJob:
    """One unit in the pool, with what harness.executors reads of a submitit job."""

    job_id: str
    call: Any  # a harness.units.UnitJob
    pool: WorkerPool
    paths: JobPaths
    timeout_s: float
    signal_delay_s: float
    state: str = "PENDING"  # PENDING, RUNNING, then FINISHED, FAILED, CANCELLED or INTERRUPTED (its worker died)
    requeues: int = 0

    def task(self, index: int) -> WarmJob:
        return self

    def done(self) -> bool:
        self.pool.poll()
        return self.state not in ("PENDING", "RUNNING")

    def cancel(self, check: bool = False) -> None:
        self.pool.cancel(self)


@dataclass
class _Worker:
    process: Any  # multiprocessing.Process
    conn: Connection
    job: WarmJob | None = None
    started: float = 0.0
    warned: bool = False  # SIGUSR2 sent
    stop_by: float | None = None  # SIGINT sent; killed if still running then


@dataclass
class WorkerPool:
    """Warm worker processes for the units of one runner."""

    folder: Path
    max_timeouts: int = 20  # requeues at a time limit before a unit counts as failed, as submitit's max_num_timeout
    workers: list[_Worker] = field(default_factory=list)
    queue: deque[WarmJob] = field(default_factory=deque)

    def __post_init__(self) -> None:
        atexit.register(self.close)  # before multiprocessing joins its children at exit: idle workers must have left

    def submit(self, call: Any, timeout_min: float, signal_delay_s: float) -> WarmJob:
        job_id = f"w{os.getpid()}-{next(JOB_NUMBERS)}"
        self.folder.mkdir(parents=True, exist_ok=True)
        job = WarmJob(job_id, call, self, JobPaths(self.folder, job_id=job_id, task_id=0), 60 * timeout_min, signal_delay_s)
        self.queue.append(job)
        self.poll()
        return job

    def cancel(self, job: WarmJob) -> None:
        if job in self.queue:
            self.queue.remove(job)
            job.state = "CANCELLED"
        for worker in self.workers:
            if worker.job is job and worker.stop_by is None:
                os.kill(worker.process.pid, signal.SIGINT)  # the unit records itself cancelled and frees its claim
                worker.stop_by = time.monotonic() + CANCEL_GRACE_S

    def poll(self) -> None:
        """Collect what workers say, enforce time limits, replace dead or spent workers, start queued units."""
        multiprocessing.active_children()  # reaps retired workers that have exited
        for worker in list(self.workers):
            message = self._message(worker)
            if message is not None:
                self._ended(worker, *message)
            elif not worker.process.is_alive() or worker.conn.closed:
                if worker.job is not None:
                    worker.job.state = "INTERRUPTED"  # killed (the OOM killer, a signal): the runner records it failed
                self._retire(worker)
            elif worker.job is not None:
                self._limit(worker)
        while self.queue:
            idle = next((w for w in self.workers if w.job is None), None) or self._spawn()
            job = self.queue.popleft()
            idle.conn.send((job.job_id, job.call))
            idle.job, idle.started, idle.warned, idle.stop_by, job.state = job, time.monotonic(), False, None, "RUNNING"

    @staticmethod
    def _message(worker: _Worker) -> tuple[str, str, int] | None:
        """How the worker's unit ended, if it has said; a worker that died closes its pipe (then conn.closed)."""
        if worker.job is None or not worker.conn.poll():
            return None
        try:
            return worker.conn.recv()  # type: ignore[no-any-return]
        except (EOFError, OSError):
            worker.conn.close()
            worker.process.kill()
            return None

    def _ended(self, worker: _Worker, job_id: str, outcome: str, resident: int) -> None:
        job, worker.job = worker.job, None
        assert job is not None and job.job_id == job_id
        if outcome == "requeue" and job.requeues < self.max_timeouts:
            job.requeues += 1
            job.state = "PENDING"
            self.queue.appendleft(job)
        else:  # a unit requeued too often counts as failed, as submitit's does
            job.state = "CANCELLED" if outcome == "cancelled" else "FINISHED" if outcome.startswith("finished") else "FAILED"
        if outcome in ("failed", "cancelled") or resident > self._memory_share():
            self._retire(worker)  # nothing a failed, interrupted or bloated unit left behind reaches the next one

    def _limit(self, worker: _Worker) -> None:
        job, elapsed = worker.job, time.monotonic() - worker.started
        assert job is not None
        if not worker.warned and elapsed > job.timeout_s - job.signal_delay_s:
            os.kill(worker.process.pid, signal.SIGUSR2)
            worker.warned = True
        if elapsed > job.timeout_s or (worker.stop_by is not None and time.monotonic() > worker.stop_by):
            worker.process.kill()

    def _memory_share(self) -> float:
        return MEMORY_SHARE * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / max(1, len(self.workers))

    def _spawn(self) -> _Worker:
        ours, theirs = multiprocessing.get_context("spawn").Pipe()
        process = multiprocessing.get_context("spawn").Process(target=_serve, args=(theirs, str(self.folder)),
                                                               name="miro-worker")
        process.start()
        theirs.close()
        worker = _Worker(process, ours)
        self.workers.append(worker)
        return worker

    def _retire(self, worker: _Worker) -> None:
        self.workers.remove(worker)
        worker.conn.close()  # an idle worker reads the end of its pipe and exits

    def close(self, grace_s: float = 0.0) -> None:
        """Let idle workers exit. A worker still running a unit finishes it first, or with `grace_s` (after a
        cancel) is given that long to stop and is then killed."""
        deadline = time.monotonic() + grace_s
        while grace_s and any(w.job is not None for w in self.workers) and time.monotonic() < deadline:
            self.poll()  # collects how the units ended
            time.sleep(0.1)
        for worker in list(self.workers):
            worker.conn.close()
            if grace_s and worker.job is not None:
                worker.process.kill()
        self.workers.clear()


class WarmExecutor:
    """What UnitRun calls on a submitit executor: units with one task and no GPU go to warm workers, others to
    submitit's local executor (`cold`), which gives each its processes."""

    def __init__(self, folder: Path, cold: submitit.LocalExecutor, max_timeouts: int) -> None:
        self.cold = cold
        self.pool = WorkerPool(Path(folder), max_timeouts)
        self.parameters: dict[str, Any] = {}

    def _warm(self) -> bool:
        return self.parameters.get("tasks_per_node", 1) == 1 and not self.parameters.get("gpus_per_node")

    def update_parameters(self, **parameters: Any) -> None:
        self.parameters.update(parameters)
        self.cold.update_parameters(**parameters)

    def batch(self) -> Any:
        return nullcontext() if self._warm() else self.cold.batch()

    def close(self, grace_s: float) -> None:
        self.pool.close(grace_s)

    def submit(self, call: Any) -> Any:
        if not self._warm():
            return self.cold.submit(call)
        return self.pool.submit(call, self.parameters.get("timeout_min", 60), self.parameters.get("signal_delay_s", 90))
