"""What a sweep shows while it runs, and what `--status` shows from another shell.

A line of counts (done, failed, running, waiting) with the time left, then a line per running unit: how long it
has run and, for a training unit, its step of its total and its last loss (from the run's log.jsonl). On a
terminal it is a live panel (rich) redrawn at every poll; written to a file (a SLURM log, `> sweep.log`) it is a
plain line when a unit finishes and otherwise every PLAIN_EVERY_S, never a bar redrawn twice a second.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import IO, Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from harness.eta import duration, training_progress, unit_seconds
from harness.store import Store
from harness.units import Unit

PLAIN_EVERY_S = 300.0  # a progress line in a log file at least this often, besides one per finished unit


def activity(store: Store, unit: Unit) -> str:
    """What a running unit is doing: 'step 120/400, loss 0.4123' for training, '' for a unit that does not say."""
    if unit.kind != "train":
        return ""
    step, total, record = training_progress(store, unit)
    return f"step {step}/{total}, loss {record['loss']:.4f}" if record else f"step 0/{total}"


def running_lines(store: Store, units: Sequence[Unit], labels: Mapping[str, str]) -> list[str]:
    """One line per unit the store says is running: its label, how long it has run, what it is doing."""
    lines = []
    for unit in units:
        if store.state(unit.key) != "running":
            continue
        _, seconds = unit_seconds(store, unit.key)
        what = activity(store, unit)
        lines.append(f"  {labels.get(unit.key, unit.key)}  {duration(seconds or 0.0)}{'  ' + what if what else ''}")
    return lines


def counts_line(states: Mapping[str, str], total: int, running: int, left: str) -> str:
    counted = Counter(states.values())
    waiting = total - len(states) - running
    return (f"units: {counted['done']} done, {counted['failed'] + counted['cancelled']} failed, {counted['blocked']} blocked, "
            f"{running} running, {waiting} waiting of {total}; time left {left}")


class Display:
    """Called at every poll of a run (`update`) while open; a live panel on a terminal, plain lines elsewhere."""

    def __init__(self, store: Store, units: Sequence[Unit], labels: Mapping[str, str], time_left: Callable[[], str],
                 stream: IO[str] | None = None) -> None:
        self.store, self.units, self.labels, self.time_left = store, list(units), dict(labels), time_left
        self.stream = stream or sys.stderr
        self.console = Console(file=self.stream)
        self.live: Live | None = None
        self.printed_done, self.printed_at = -1, 0.0

    def __enter__(self) -> Display:
        if self.console.is_terminal:
            self.live = Live(console=self.console, auto_refresh=False, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def update(self, states: Mapping[str, str], submitted: Collection[str]) -> None:
        """`states`: the final state of every unit that has one; `submitted`: the keys of units submitted and not finished."""
        if self.live is None and len(states) == self.printed_done and time.monotonic() - self.printed_at < PLAIN_EVERY_S:
            return
        out = [unit for unit in self.units if unit.key in submitted]  # only these can be running: no scan of every unit
        lines = [counts_line(states, len(self.units), len(submitted), self.time_left()), *running_lines(self.store, out, self.labels)]
        if self.live is not None:
            self.live.update(Text("\n".join(lines)), refresh=True)
        else:
            self.printed_done, self.printed_at = len(states), time.monotonic()
            print(f"[{time.strftime('%H:%M:%S')}] " + "\n".join(lines), file=self.stream, flush=True)
