"""Run a sweep end to end: plan units, run what is not done, gather results, write the report.

    python -m harness.sweep [default|schemes|paper|smoke] [--executor local|debug|slurm] [--dry-run]
                            [--status] [--retry] [--fail-fast] [--root runs] [SLURM options]

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

from ablations.sweeps import SWEEPS, sweep
from harness.aggregate import aggregate
from harness.eta import TimeLeft
from harness.executors import SlurmResources, make_executor, render_sbatch, retry, submit_units
from harness.plan import EvalSettings, Plan, plan_sweep
from harness.store import Store
from miro.errors import MiroError

FUNCTIONS = {"data": "harness.tasks:prepare_data", "train": "harness.tasks:train_arm",
             "evaluate": "harness.tasks:evaluate_checkpoint", "tune": "harness.tasks:tune_checkpoint",
             "control": "harness.tasks:control_targets"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", nargs="?", default="default", help=f"one of {', '.join(SWEEPS)}")
    p.add_argument("--root", default="runs", help="folder holding the store (shared by sweeps) and each sweep's results")
    p.add_argument("--executor", default="local", choices=["local", "debug", "slurm"])
    p.add_argument("--dry-run", action="store_true", help="print the plan and the resources each job would request, run nothing")
    p.add_argument("--status", action="store_true", help="print each unit's state and exit")
    p.add_argument("--retry", action="store_true", help="resubmit only the units that failed")
    p.add_argument("--fail-fast", action="store_true", help="cancel everything when a unit fails")
    p.add_argument("--threads", type=int, default=1, help="torch threads per unit (local: units run side by side)")
    p.add_argument("--max-parallel", type=int, default=2, help="units running at once on the local executor")
    p.add_argument("--samples-per-prompt", type=int, default=4, help="images per evaluation prompt")
    p.add_argument("--tune-trials", type=int, default=12, help="Optuna trials for the sweep's tuned arm")
    s = p.add_argument_group("SLURM resources (per job; training units may ask for more)")
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
        log = store.work_dir(planned.unit.key) / "run" / "log.jsonl"
        if log.is_file():
            lines = log.read_text().splitlines()
            if lines:
                record = json.loads(lines[-1])
                rates.append(record["samples_per_s"] / planned.unit.params["config"]["optim"]["batch_size"])
    return sum(rates) / len(rates) if rates else None


def print_plan(plan: Plan, store: Store, args: argparse.Namespace) -> None:
    sweep = plan.sweep
    print(f"sweep {sweep.name}: {len(sweep.arms)} arms x {len(sweep.seeds)} seeds, evaluated at steps {list(sweep.eval_steps)}")
    for wave, units in plan.waves:
        states = Counter(store.state(u.unit.key) for u in units)
        print(f"  {wave:9s} {len(units):4d} units: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
    rate = measured_step_rate(plan, store)
    left = sum(u.unit.params["config"]["optim"]["steps"] for u in plan.train if store.state(u.unit.key) != "done")
    estimate = (f"about {left / rate / 3600:.2f} unit-hours at the measured {rate:.1f} steps/s per unit" if rate
                else "no estimate until one arm has trained here")
    print(f"  training steps left: {left} ({estimate}; divide by the units running side by side)")
    for planned in plan.train if args.dry_run else []:
        print(f"    {planned.label}: {store.state(planned.unit.key)}  {planned.unit.key}")
    if args.executor == "slurm" and args.dry_run:
        print("each job's sbatch script (arrays add --array):")
        print(render_sbatch(resources(args), Path(args.root) / "jobs", name="train"))


def run(args: argparse.Namespace) -> Path:
    chosen = sweep(args.sweep)
    root = Path(args.root)
    store = Store(root / "store")
    plan = plan_sweep(chosen, store, EvalSettings(samples_per_prompt=args.samples_per_prompt, tune_trials=args.tune_trials), threads=args.threads)
    if args.dry_run or args.status:
        print_plan(plan, store, args)
        return root
    executor = make_executor(args.executor, root / "jobs" / chosen.name, resources(args))
    units = [planned.unit for _, wave in plan.waves for planned in wave]
    tic = time.perf_counter()
    submit = retry if args.retry else submit_units
    running = submit(executor, store, units, FUNCTIONS, fail_fast=args.fail_fast, max_running=args.max_parallel)  # type: ignore[operator]
    running.time_left = TimeLeft(store, units, args.max_parallel).postfix
    outcome = running.wait()
    failed = {key: state for key, state in outcome.items() if state != "done"}
    sweep_dir = aggregate(plan, store, root / "sweeps" / chosen.name)
    from reports.build import build_report

    built = build_report(sweep_dir)
    print(f"sweep {chosen.name}: {len(outcome) - len(failed)} of {len(outcome)} units done in {time.perf_counter() - tic:.0f} s")
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
