"""Run a study end to end: check it, plan units, run what is not done, gather results, write the report.

    python -m harness.sweep [default|schemes|paper|smoke|my_study.py] [--data PATH] [--weights FILE]
                            [--set section.key=value ...] [--executor local|debug|slurm] [--dry-run]
                            [--status] [--retry] [--fail-fast] [--cold] [--root runs] [SLURM defaults]

Rerunning the same command resumes: finished units are skipped, interrupted training continues from its
last checkpoint, and units another sweep already computed are reused. While it runs it shows each running
unit (a training unit: its step and last loss) and the time left; `--status` shows the same from another
shell; `tensorboard --logdir runs/sweeps/<study>` shows every arm's curves (docs/monitoring.md). It ends by
printing the paper's claims as the report judged them, then the report's path. Ctrl-C or SIGTERM stops it
cleanly: nothing more is launched, local units are stopped and recorded, one line says so, and the same
command resumes.

Every option is checked before any unit runs, and `--dry-run` checks exactly what a real run does. A
finished report is never replaced by a worse one: when units fail, the sweep keeps the last complete
report and its results, writes the partial one beside it in <sweep>.partial/, prints a table of the failed
and blocked units (kind, unit, last traceback line, log file; `--status` prints the same) and exits
non-zero.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.estimate import MAX_GPU_HOURS, THROUGHPUTS
from harness.study_file import builtin_names
from miro.errors import CommandParser, MiroError, number, one_line_errors

if TYPE_CHECKING:
    from harness.executors import SlurmResources
    from harness.plan import Plan
    from harness.store import Store
    from harness.units import PlannedUnit

# torch and the rest of the pipeline are imported where they are used, so that --help starts at once
ESTIMATE_NOTES = {"data": " (annotation of every image)", "evaluate": " (generation included)"}
# the report, named rather than imported: reports/ reads harness/, never the other way round
REPORT = "reports.build:build_report"
HEADLINE = "reports.headline:headline"  # the claims, as the report judged them, in a few lines


def parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="python -m harness.sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", nargs="?", default="default",
                   help=f"a built-in study ({', '.join(builtin_names())}) or a study file: my_study.py, or my_study.py:NAME")
    p.add_argument("--data", default="", help="the study's data (e.g. webdataset shards), for studies that take one")
    p.add_argument("--weights", default="", help="the weights file (TOML of local model paths; default $MIRO_WEIGHTS)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a study field: tuning.trials=4, evaluation.samples_per_prompt=2, resources.train.gpus_per_node=8, run.optim.steps=100")
    p.add_argument("--throughputs", default=str(THROUGHPUTS), help="the table of measured throughputs behind --dry-run's estimate")
    p.add_argument("--max-gpu-hours", type=number(float, 0, low_open=True), default=MAX_GPU_HOURS,
                   help="refuse a study estimated above this many GPU-hours, or with a training unit longer than a year (default: %(default)g)")
    p.add_argument("--force", action="store_true", help="run (or plan) a study over --max-gpu-hours anyway")
    p.add_argument("--root", default="runs", help="folder holding the store (shared by sweeps) and each sweep's results")
    p.add_argument("--executor", default="local", choices=["local", "debug", "slurm"])
    p.add_argument("--dry-run", action="store_true", help="print the plan and the resources each job would request, run nothing")
    p.add_argument("--status", action="store_true", help="print each unit's state and exit")
    p.add_argument("--retry", action="store_true", help="resubmit only the units that failed")
    p.add_argument("--fail-fast", action="store_true", help="cancel everything when a unit fails")
    p.add_argument("--threads", type=number(int, 1), default=1, help="torch threads per unit (local: units run side by side)")
    p.add_argument("--poll-s", type=number(float, 0, low_open=True), help="seconds between polls of the executor (default: 30 on SLURM, 1 locally)")
    p.add_argument("--max-parallel", type=number(int, 1), default=2, help="units running at once on the local executor")
    p.add_argument("--cold", action="store_true", help="local: run each unit in a fresh process (as on SLURM) instead of in "
                   "warm workers that keep their imports and loaded models from one unit to the next")
    s = p.add_argument_group("SLURM defaults (per job; the study's resources per unit kind override them)")
    s.add_argument("--partition")
    s.add_argument("--account")
    s.add_argument("--qos")
    s.add_argument("--time-min", type=number(int, 3), default=60)
    s.add_argument("--gpus-per-node", type=number(int, 0), default=0)
    s.add_argument("--tasks-per-node", type=number(int, 1), default=1)
    s.add_argument("--nodes", type=number(int, 1), default=1)
    s.add_argument("--cpus-per-task", type=number(int, 1), default=2)
    s.add_argument("--mem-gb", type=number(float, 0, low_open=True))
    s.add_argument("--constraint")
    s.add_argument("--array-parallelism", type=number(int, 1), default=256)
    s.add_argument("--sbatch", action="append", default=[], metavar="KEY=VALUE", help="any other sbatch option")
    return p


def resources(args: argparse.Namespace) -> SlurmResources:
    from harness.executors import SlurmResources

    extra = {}
    for item in args.sbatch:
        key, sep, value = item.partition("=")
        if not sep:
            raise MiroError(f'--sbatch "{item}" is not of the form key=value (e.g. exclusive=true)')
        extra[key] = value
    return SlurmResources(partition=args.partition, account=args.account, qos=args.qos, time_min=args.time_min,
                          nodes=args.nodes, tasks_per_node=args.tasks_per_node, gpus_per_node=args.gpus_per_node,
                          cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb, constraint=args.constraint,
                          array_parallelism=args.array_parallelism, additional_parameters=tuple(sorted(extra.items())))


def training_left(plan: Plan, store: Store) -> tuple[int, float | None]:
    """(steps the plan's unfinished training units have not logged, the mean steps/s of those that have logged,
    finished or running, or None): each unit's log is read once."""
    from harness.eta import steps_per_second, training_progress

    progress = [(planned.unit, *training_progress(store, planned.unit)) for planned in plan.train]
    rates = [steps_per_second(unit, record) for unit, _, _, record in progress if record]
    left = sum(total - step for unit, step, total, _ in progress if store.state(unit.key) != "done")
    return left, (sum(rates) / len(rates) if rates else None)


def planned_seconds(plan: Plan, throughputs: str) -> dict[str, float]:
    """The planner's seconds per unit of each kind it can estimate (harness.estimate: measured H100 throughputs)."""
    from harness.estimate import read_throughputs, stage_gpu_hours

    hours = stage_gpu_hours(plan, read_throughputs(throughputs))
    return {stage: float(hours[stage] or 0) * 3600 / len(units) for stage, units in (("train", plan.train), ("evaluate", plan.evaluate))
            if hours.get(stage) and units}


def print_plan(plan: Plan, store: Store, args: argparse.Namespace) -> None:
    from harness.estimate import read_throughputs, stage_gpu_hours
    from harness.executors import array_chunks, cluster_max_array_size, render_sbatch
    from harness.identity import rerun_lines

    study = plan.study
    runs = sum(len(study.seeds_of(arm)) for arm in study.arms)
    print(f"study {study.name}: {len(study.arms)} arms, {runs} (arm, seed) runs, evaluated at steps {list(study.eval_steps)} "
          f"on {', '.join(s.name for s in study.evaluation)}")
    hours = stage_gpu_hours(plan, read_throughputs(args.throughputs)) if args.dry_run else {}
    for wave, units in plan.waves:
        states = Counter(store.state(u.unit.key) for u in units)
        kinds = Counter(u.unit.kind for u in units)
        stage_hours = hours.get(wave)
        cost = f"; estimate {stage_hours:,.1f} GPU-hours{ESTIMATE_NOTES.get(wave, '')}" if stage_hours else ""
        print(f"  {wave:9s} {len(units):4d} units ({', '.join(f'{n} {k}' for k, n in kinds.items()) or 'none'}): "
              + ", ".join(f"{n} {s}" for s, n in sorted(states.items())) + cost)
    for line in rerun_lines(store, [planned for _, wave in plan.waves for planned in wave]):
        print(line)
    if hours:
        print(f"  (GPU-hour estimates scale the measured throughputs of {args.throughputs} to H100s; edit it for your cluster)")
    left, rate = training_left(plan, store)
    estimate = (f"about {left / rate / 3600:.2f} unit-hours at the measured {rate:.1f} steps/s per unit" if rate
                else "no estimate until one arm has trained here")
    print(f"  training steps left: {left} ({estimate}; divide by the units running side by side)")
    for planned in plan.train if args.dry_run else []:
        print(f"    {planned.label}: {store.state(planned.unit.key)}  {planned.unit.key}")
    if args.executor == "slurm" and args.dry_run:
        defaults = resources(args)
        jobs: dict[tuple[str, str], list[PlannedUnit]] = {}  # units of one kind asking for the same resources share an array
        for _, stage in plan.waves:
            for member in stage:
                jobs.setdefault((member.unit.kind, json.dumps(dict(member.unit.resources), sort_keys=True)), []).append(member)
        largest = cluster_max_array_size()
        for (kind, asked), members in jobs.items():
            arrays = array_chunks(members, largest) if len(members) > 1 else []
            array = len(arrays[0]) if arrays else None
            groups = sorted({u.group for u in members if u.group})
            shape = (", one array" if len(arrays) == 1 else f", {len(arrays)} arrays of at most {largest} (MaxArraySize); the first"
                     if arrays else "")
            print(f"sbatch script of the {kind}{' ' + ', '.join(groups) if groups else ''} jobs ({len(members)} unit(s){shape}):")
            print(render_sbatch(defaults.override(json.loads(asked)), Path(args.root) / "jobs", name=kind, array_size=array))


def checked(args: argparse.Namespace) -> tuple[Plan, Store]:
    """Check every option, then plan: the same for a run, --dry-run and --status, before any unit runs."""
    from harness.checks import absurd_plan, validate
    from harness.estimate import read_throughputs
    from harness.executors import check_units, job_parameters, make_executor
    from harness.plan import plan_study
    from harness.store import Store
    from harness.study_file import load_study
    from harness.units import KINDS
    from miro.checks import check_run_config

    chosen = load_study(args.study, {"data": args.data, "weights": args.weights}, args.set)
    validate(chosen)
    slurm = resources(args)
    for arm in chosen.arms:
        try:
            check_run_config(arm.config)
        except MiroError as error:
            raise MiroError(f"study {chosen.name}, arm {arm.name}: {error}") from None
    job_parameters(args.executor, slurm, "miro")  # e.g. several nodes on the local executor: refused before the store is touched
    if args.executor == "slurm" and not (args.dry_run or args.status):
        make_executor("slurm", Path(args.root) / "jobs" / chosen.name, slurm)  # refuses a machine without sbatch
    store = Store(Path(args.root) / "store")
    plan = plan_study(chosen, store, threads=args.threads)
    if not args.force and (problem := absurd_plan(plan, read_throughputs(args.throughputs), args.max_gpu_hours,
                                                  lambda unit: max(1, (r := slurm.override(unit.unit.resources)).gpus_per_node * r.nodes))):
        raise MiroError(f"{problem}: check the steps and sizes, or pass --force (--max-gpu-hours N raises the limit)")
    check_units(args.executor, slurm, store, [planned.unit for _, wave in plan.waves for planned in wave], KINDS)
    return plan, store


def problems(plan: Plan, store: Store, states: dict[str, str] | None = None) -> list[dict[str, str]]:
    """The plan's failed, cancelled and blocked units, each with why (the last traceback line) and its log file."""
    by_key = {planned.unit.key: planned for _, wave in plan.waves for planned in wave}
    state = {key: (states or {}).get(key) or store.state(key) for key in by_key}
    for _, wave in plan.waves:  # waves are in dependency order: a unit after a failed one is blocked
        for planned in wave:
            deps = [d for d in planned.unit.depends_on if state.get(d) in ("failed", "cancelled", "blocked")]
            if deps and state[planned.unit.key] not in ("done", "failed", "cancelled"):
                state[planned.unit.key] = "blocked"
    statuses = store.status()
    rows = []
    for key, planned in by_key.items():
        if state[key] not in ("failed", "cancelled", "blocked"):
            continue
        record = store.record(key)
        if state[key] == "blocked":
            first = next(d for d in planned.unit.depends_on if state.get(d) in ("failed", "cancelled", "blocked"))
            why = f"needs {by_key[first].label if first in by_key else first} ({state.get(first)})"
        else:
            why = (statuses[key].detail if key in statuses else None) or "no traceback recorded"
        found = re.search(r"logs: (\S+)", str(record.get("reason", "")))
        log = str(record.get("stderr") or (found.group(1) if found else "-"))
        rows.append({"state": state[key], "kind": planned.unit.kind, "unit": planned.label, "why": why, "log": log})
    return rows


def print_problems(rows: list[dict[str, str]]) -> None:
    if not rows:
        return
    print(f"{len(rows)} units failed or blocked (fix the cause, then rerun with --retry):")
    width = max(len(r["unit"]) for r in rows)
    for r in rows:
        print(f"  {r['state']:9s} {r['kind']:8s} {r['unit']:{width}s}  {r['why']}\n  {'':9s} {'':8s} {'':{width}s}  log: {r['log']}")


def _finished_units(sweep_dir: Path) -> tuple[float, float] | None:
    """(finished, expected) units of the report in `sweep_dir`, None when there is none; an unreadable one counts as complete."""
    path = sweep_dir / "sweep.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        return float(record["finished_units"]), float(record["expected_units"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError):
        return 1.0, 1.0  # never overwrite what cannot be judged


def publish(plan: Plan, store: Store, sweep_dir: Path) -> tuple[Path, bool]:
    """Gather results and build the report; (report path, whether it is a partial one written beside the kept one).

    The sweep folder is replaced only by a complete result, or when it holds no better one; else the
    result goes to <sweep>.partial/, marked partial in its title line. Stale files never survive a rewrite.
    """
    from harness.aggregate import aggregate, check_results
    from harness.units import resolve_function
    from miro.files import write_json_atomic

    check_results(store, [*plan.evaluate, *plan.control])  # before counting: a unit whose results do not read is not finished
    units: list[PlannedUnit] = [planned for _, wave in plan.waves for planned in wave]
    finished, expected = sum(store.state(u.unit.key) == "done" for u in units), len(units)
    kept = _finished_units(sweep_dir)
    partial = finished < expected and kept is not None and (kept[0] >= kept[1] or kept[0] > finished)
    target = sweep_dir.with_name(f"{sweep_dir.name}.partial") if partial else sweep_dir
    for stale in ("results", "report_tables"):
        shutil.rmtree(target / stale, ignore_errors=True)
    aggregate(plan, store, target)
    if partial:
        record = json.loads((target / "sweep.json").read_text())
        record["description"] = (f"PARTIAL: {finished} of {expected} units finished; the last complete report is kept in "
                                 f"{sweep_dir}. {record['description']}")
        write_json_atomic(target / "sweep.json", record)
    elif finished == expected:
        shutil.rmtree(sweep_dir.with_name(f"{sweep_dir.name}.partial"), ignore_errors=True)
    built: Any = resolve_function(REPORT)(target)  # reports.build.Built
    return built.html, partial


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the runner (an interrupt: a unit the debug executor runs here records itself cancelled)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn the first SIGINT or SIGTERM into `Stopped`; a second one ends the runner at once (the units were told)."""
    def stop(signum: int, frame: Any) -> None:
        for name in (signal.SIGINT, signal.SIGTERM):
            signal.signal(name, signal.SIG_DFL)
        raise Stopped(signum)

    previous = {name: signal.signal(name, stop) for name in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(name, handler)


def stopped_line(stop: Stopped, running: Any, plan: Plan, store: Store) -> str:
    """What a stopped sweep says, in one line: what it did with its units and how to go on."""
    stopped, left = running.stop()
    units = [planned.unit.key for _, wave in plan.waves for planned in wave]
    done = sum(store.state(key) == "done" for key in units)
    what = (f"left {left} running unit(s) to finish on the cluster (--status shows them)" if left else
            f"stopped {stopped} running unit(s) and recorded them cancelled (training resumes from its last checkpoint)")
    return (f"stopped by {stop}: launched nothing more, {what}; {done} of {len(units)} units done and kept; "
            "rerun the same command to resume")


def print_status(plan: Plan, store: Store, args: argparse.Namespace) -> None:
    """The plan's states, what its running units are doing, its failures, and a finished sweep's claims."""
    from harness.progress import running_lines
    from harness.units import resolve_function

    print_plan(plan, store, args)
    units = [planned.unit for _, wave in plan.waves for planned in wave]
    running = running_lines(store, units, {planned.unit.key: planned.label for _, wave in plan.waves for planned in wave})
    if running:
        print(f"{len(running)} units running:", *running, sep="\n")
    print_problems(problems(plan, store))
    if args.status:
        found = resolve_function(HEADLINE)(Path(args.root) / "sweeps" / plan.study.name)
        if found:
            print(f"the last complete report ({Path(args.root) / 'sweeps' / plan.study.name}):\n{found}")


def run(args: argparse.Namespace) -> Path:
    from harness.board import refresh
    from harness.eta import TimeLeft
    from harness.executors import make_executor, retry, submit_units
    from harness.progress import Display
    from harness.units import KINDS, resolve_function

    plan, store = checked(args)
    chosen, root = plan.study, Path(args.root)
    if args.dry_run or args.status:
        print_status(plan, store, args)
        return root
    executor = make_executor(args.executor, root / "jobs" / chosen.name, resources(args), warm=not args.cold)
    planned = [planned for _, wave in plan.waves for planned in wave]
    units = [p.unit for p in planned]
    tic = time.perf_counter()
    submit = retry if args.retry else submit_units
    running = None
    try:
        with stop_on_signals():
            running = submit(executor, store, units, KINDS, fail_fast=args.fail_fast, max_running=args.max_parallel,
                             poll_s=args.poll_s)  # type: ignore[operator]
            time_left = TimeLeft(store, units, args.max_parallel, planned_seconds(plan, args.throughputs))
            running.display = Display(store, units, {p.unit.key: p.label for p in planned}, lambda: time_left.estimate().text)
            running.every_poll = lambda: refresh(plan, store, root / "sweeps" / chosen.name)  # a live TensorBoard view
            outcome = running.wait()
            refresh(plan, store, root / "sweeps" / chosen.name)
            html, partial = publish(plan, store, root / "sweeps" / chosen.name)
    except Stopped as stop:
        line = stopped_line(stop, running, plan, store) if running else f"stopped by {stop} before any unit was launched"
        print(f"error: {line}", file=sys.stderr)
        raise SystemExit(128 + stop.signum) from None
    # publish marks failed a done unit whose results do not read back (harness.aggregate.check_results)
    outcome = {key: store.state(key) if state == "done" else state for key, state in outcome.items()}
    failed = {key: state for key, state in outcome.items() if state != "done"}
    print(f"study {chosen.name}: {len(outcome) - len(failed)} of {len(outcome)} units done in {time.perf_counter() - tic:.0f} s")
    found = resolve_function(HEADLINE)(html.parent)
    if found:
        print(found)
    print(html)
    rows = problems(plan, store, outcome)
    print_problems(rows)
    if rows:
        kept = f"; the last complete report is kept in {root / 'sweeps' / chosen.name}, this partial one is {html}" if partial else ""
        raise MiroError(f"{len(rows)} units of study {chosen.name} failed or are blocked (table above){kept}; "
                        "fix the cause and rerun with --retry")
    return html


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    with one_line_errors():
        run(args)


if __name__ == "__main__":
    main()
