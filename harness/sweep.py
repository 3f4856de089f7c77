"""Run a study end to end: check it, plan units, run what is not done, gather results, write the report.

    python -m harness.sweep [default|schemes|paper|smoke|my_study.py] [--data PATH] [--weights FILE]
                            [--set section.key=value ...] [--executor local|debug|slurm] [--dry-run]
                            [--status] [--retry] [--fail-fast] [--root runs] [SLURM defaults]

Rerunning the same command resumes: finished units are skipped, interrupted training continues from its
last checkpoint, and units another sweep already computed are reused. Ends by printing the report's path.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.aggregate import aggregate
from harness.checks import validate
from harness.estimate import THROUGHPUTS, read_throughputs, stage_gpu_hours
from harness.executors import SlurmResources, make_executor, render_sbatch, retry, submit_units
from harness.plan import Plan, plan_study
from harness.store import Store
from harness.study_file import builtin_names, load_study
from harness.tasks import run_dir
from harness.units import KINDS, PlannedUnit, resolve_function
from miro.errors import MiroError

ESTIMATE_NOTES = {"data": " (annotation of every image)", "evaluate": " (generation included)"}
# the report, named rather than imported: reports/ reads harness/, never the other way round
REPORT = "reports.build:build_report"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", nargs="?", default="default",
                   help=f"a built-in study ({', '.join(builtin_names())}) or a study file: my_study.py, or my_study.py:NAME")
    p.add_argument("--data", default="", help="the study's data (e.g. webdataset shards), for studies that take one")
    p.add_argument("--weights", default="", help="the weights file (TOML of local model paths; default $MIRO_WEIGHTS)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a study field: tuning.trials=4, evaluation.samples_per_prompt=2, resources.train.gpus_per_node=8, run.optim.steps=100")
    p.add_argument("--throughputs", default=str(THROUGHPUTS), help="the table of measured throughputs behind --dry-run's estimate")
    p.add_argument("--root", default="runs", help="folder holding the store (shared by sweeps) and each sweep's results")
    p.add_argument("--executor", default="local", choices=["local", "debug", "slurm"])
    p.add_argument("--dry-run", action="store_true", help="print the plan and the resources each job would request, run nothing")
    p.add_argument("--status", action="store_true", help="print each unit's state and exit")
    p.add_argument("--retry", action="store_true", help="resubmit only the units that failed")
    p.add_argument("--fail-fast", action="store_true", help="cancel everything when a unit fails")
    p.add_argument("--threads", type=int, default=1, help="torch threads per unit (local: units run side by side)")
    p.add_argument("--poll-s", type=float, help="seconds between polls of the executor (default: 30 on SLURM, 1 locally)")
    p.add_argument("--max-parallel", type=int, default=2, help="units running at once on the local executor")
    s = p.add_argument_group("SLURM defaults (per job; the study's resources per unit kind override them)")
    s.add_argument("--partition")
    s.add_argument("--account")
    s.add_argument("--qos")
    s.add_argument("--time-min", type=int, default=60)
    s.add_argument("--gpus-per-node", type=int, default=0)
    s.add_argument("--tasks-per-node", type=int, default=1)
    s.add_argument("--nodes", type=int, default=1)
    s.add_argument("--cpus-per-task", type=int, default=2)
    s.add_argument("--mem-gb", type=float)
    s.add_argument("--constraint")
    s.add_argument("--array-parallelism", type=int, default=256)
    s.add_argument("--sbatch", action="append", default=[], metavar="KEY=VALUE", help="any other sbatch option")
    return p


def resources(args: argparse.Namespace) -> SlurmResources:
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


def measured_step_rate(plan: Plan, store: Store) -> float | None:
    """Steps/s of finished training units of this plan (from their logs), to estimate what is left."""
    rates = []
    for planned in plan.train:
        log = run_dir(store.work_dir(planned.unit.key)) / "log.jsonl"
        if log.is_file():
            lines = log.read_text().splitlines()
            if lines:
                record = json.loads(lines[-1])
                rates.append(record["samples_per_s"] / planned.unit.params["config"]["optim"]["batch_size"])
    return sum(rates) / len(rates) if rates else None


def print_plan(plan: Plan, store: Store, args: argparse.Namespace) -> None:
    study = plan.study
    print(f"study {study.name}: {len(study.arms)} arms x {len(study.seeds)} seeds, evaluated at steps {list(study.eval_steps)} "
          f"on {', '.join(s.name for s in study.evaluation)}")
    hours = stage_gpu_hours(plan, read_throughputs(args.throughputs)) if args.dry_run else {}
    for wave, units in plan.waves:
        states = Counter(store.state(u.unit.key) for u in units)
        kinds = Counter(u.unit.kind for u in units)
        stage_hours = hours.get(wave)
        cost = f"; estimate {stage_hours:,.1f} GPU-hours{ESTIMATE_NOTES.get(wave, '')}" if stage_hours else ""
        print(f"  {wave:9s} {len(units):4d} units ({', '.join(f'{n} {k}' for k, n in kinds.items()) or 'none'}): "
              + ", ".join(f"{n} {s}" for s, n in sorted(states.items())) + cost)
    if hours:
        print(f"  (GPU-hour estimates scale the measured throughputs of {args.throughputs} to H100s; edit it for your cluster)")
    rate = measured_step_rate(plan, store)
    left = sum(u.unit.params["config"]["optim"]["steps"] for u in plan.train if store.state(u.unit.key) != "done")
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
        for (kind, asked), members in jobs.items():
            array = len(members) if len(members) > 1 else None
            groups = sorted({u.group for u in members if u.group})
            print(f"sbatch script of the {kind}{' ' + ', '.join(groups) if groups else ''} jobs ({len(members)} unit(s)"
                  f"{', one array' if array else ''}):")
            print(render_sbatch(defaults.override(json.loads(asked)), Path(args.root) / "jobs", name=kind, array_size=array))


def run(args: argparse.Namespace) -> Path:
    chosen = load_study(args.study, {"data": args.data, "weights": args.weights}, args.set)
    validate(chosen)
    root = Path(args.root)
    store = Store(root / "store")
    plan = plan_study(chosen, store, threads=args.threads)
    if args.dry_run or args.status:
        print_plan(plan, store, args)
        return root
    executor = make_executor(args.executor, root / "jobs" / chosen.name, resources(args))
    units = [planned.unit for _, wave in plan.waves for planned in wave]
    tic = time.perf_counter()
    submit = retry if args.retry else submit_units
    outcome = submit(executor, store, units, KINDS, fail_fast=args.fail_fast, max_running=args.max_parallel,
                     poll_s=args.poll_s).wait()  # type: ignore[operator]
    failed = {key: state for key, state in outcome.items() if state != "done"}
    sweep_dir = aggregate(plan, store, root / "sweeps" / chosen.name)
    built: Any = resolve_function(REPORT)(sweep_dir)  # reports.build.Built
    print(f"study {chosen.name}: {len(outcome) - len(failed)} of {len(outcome)} units done in {time.perf_counter() - tic:.0f} s")
    statuses = store.status()
    for key, state in sorted(failed.items()):
        print(f"  {state}: {key}  {statuses[key].detail if key in statuses else ''}")
    print(built.html)
    return built.html


def main(argv: Sequence[str] | None = None) -> None:
    try:
        run(parser().parse_args(argv))
    except MiroError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
