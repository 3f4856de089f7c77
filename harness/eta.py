"""Time left in a sweep, from each unit kind's measured duration (a training unit is not an evaluation).

A unit's duration is read from its events.jsonl: from its last "running" event to the "done" after it.
Units left of a kind are charged that kind's mean measured duration (a running one, less the time it has
already run); kinds with no finished unit yet are named, not guessed. The total is divided by the units
that run side by side.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import datetime

from harness.store import FINAL_STATES, Store
from harness.units import Unit


def _events(store: Store, key: str) -> list[dict]:
    path = store.unit_dir(key) / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _time(event: Mapping) -> float:
    return datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%S%z").timestamp()


def unit_seconds(store: Store, key: str) -> tuple[float | None, float | None]:
    """(duration of the finished run, seconds the current run has been going); either may be None."""
    started = None
    for event in _events(store, key):
        if event["event"] == "running":
            started = _time(event)
        elif event["event"] == "done" and started is not None:
            return _time(event) - started, None
    return None, (time.time() - started) if started is not None else None


class TimeLeft:
    """`postfix()` for a progress bar: {"left": "4m10s"}, {"left": ">= 3m00s (not yet measured: train)"}, or
    "unknown (...)" while no kind that is left has been measured."""

    def __init__(self, store: Store, units: Sequence[Unit], parallel: int) -> None:
        self.store, self.units, self.parallel = store, list(units), max(1, parallel)

    def estimate(self) -> tuple[float, list[str]]:
        """(seconds left, kinds left with no measured duration)."""
        measured: dict[str, list[float]] = {}
        left: list[tuple[str, float | None]] = []
        for unit in self.units:
            done, running = unit_seconds(self.store, unit.key)
            if self.store.state(unit.key) in FINAL_STATES:
                if done is not None:
                    measured.setdefault(unit.kind, []).append(done)
            else:
                left.append((unit.kind, running))
        seconds, unknown = 0.0, set()
        for kind, running in left:
            if kind not in measured:
                unknown.add(kind)
                continue
            mean = sum(measured[kind]) / len(measured[kind])
            seconds += max(mean - (running or 0.0), 0.0)
        return seconds / self.parallel, sorted(unknown)

    def postfix(self) -> dict[str, str]:
        seconds, unknown = self.estimate()
        text = f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
        if not unknown:
            return {"left": text}
        return {"left": f"{'>= ' + text if seconds else 'unknown'} (not yet measured: {', '.join(unknown)})"}
