"""The sweep folder's TensorBoard view: `tensorboard --logdir <sweep folder>` shows one run per arm and seed.

<sweep>/tensorboard/<arm>-seed<k>/ holds relative links to the event files of that arm and seed's training unit
(train/loss, lr, grad_norm, samples_per_s, ...) and of its evaluation units (eval/<suite>/<metric> at each
checkpoint's step), named so that TensorBoard reads them in the order it needs: the training first, then the
evaluations by step (it drops a point of a tag read after a later step of the same tag). The units stay in the
store, shared between sweeps; the sweep refreshes the links while it runs, so the view is live, and the links are
relative, so a moved root still shows.
"""
from __future__ import annotations

import os
from pathlib import Path

from harness.plan import Plan
from harness.store import Store
from harness.tasks import run_dir
from miro.run_log import TENSORBOARD


def _sources(store: Store, plan: Plan) -> dict[str, list[tuple[str, Path]]]:
    """run name -> (link name prefix, event folder) of every unit that writes curves, in reading order."""
    runs: dict[str, list[tuple[str, Path]]] = {}
    for planned in plan.train:
        runs.setdefault(f"{planned.arm}-seed{planned.seed}", []).append(("0.train", run_dir(store.work_dir(planned.unit.key)) / TENSORBOARD))
    for planned in sorted(plan.evaluate, key=lambda p: (p.step or 0, p.suite or "")):
        runs.setdefault(f"{planned.arm}-seed{planned.seed}", []).append(
            (f"1.step{planned.step:09d}.{planned.suite}", store.work_dir(planned.unit.key) / TENSORBOARD))
    return runs


def refresh(plan: Plan, store: Store, sweep_dir: Path) -> None:
    """Link every event file written so far into <sweep_dir>/tensorboard/<arm>-seed<k>/."""
    board = Path(sweep_dir) / TENSORBOARD
    for run, sources in _sources(store, plan).items():
        folder = board / run
        for prefix, events in sources:
            for index, source in enumerate(sorted(events.glob("*tfevents*")) if events.is_dir() else []):
                link, target = folder / f"events.out.tfevents.{prefix}.{index}", os.path.relpath(source, folder)
                if link.is_symlink() and os.readlink(link) == target:
                    continue
                folder.mkdir(parents=True, exist_ok=True)
                link.unlink(missing_ok=True)
                link.symlink_to(target)
