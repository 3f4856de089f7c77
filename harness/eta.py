"""Time left in a sweep, from each unit kind's measured duration (a training unit is not an evaluation).

A unit's duration is read from its events.jsonl: from its last "running" event to the "done" after it.
Units left of a kind are charged that kind's mean measured duration (a running one, less the time it has
already run). A training unit is charged its steps left at the step rate its own log shows, or that another
training unit of the sweep shows, which exists seconds after the first one starts. Until a kind is measured,
its units are charged the planner's estimate (`planned`, seconds per unit of that kind) and the time left
says it is an estimate; kinds with neither are named, not guessed. The total is divided by the units that run
side by side.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from harness.store import FINAL_STATES, Store
from harness.tasks import run_dir
from harness.units import Unit
from miro.run_log import last_record


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


def training_progress(store: Store, unit: Unit) -> tuple[int, int, dict | None]:
    """(steps logged, total steps, last log record or None) of a training unit."""
    total = int(unit.params["config"]["optim"]["steps"])
    record = last_record(run_dir(store.work_dir(unit.key)))
    return (int(record["step"]) if record else 0), total, record


def steps_per_second(unit: Unit, record: Mapping) -> float:
    return float(record["samples_per_s"]) / int(unit.params["config"]["optim"]["batch_size"])


def duration(seconds: float) -> str:
    """'4m10s', '1h02m'."""
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{int(seconds % 60):02d}s"


@dataclass(frozen=True)
class Estimate:
    seconds: float
    estimated: list[str]  # kinds charged the planner's estimate or another unit's step rate
    unknown: list[str]  # kinds left with nothing to go by

    @property
    def text(self) -> str:
        """'4m10s'; '≈ 4m10s (estimate for: evaluate)'; '≥ 3m00s (estimate for: train; not yet measured: control)'."""
        notes = ([f"estimate for: {', '.join(self.estimated)}"] if self.estimated else []) + \
            ([f"not yet measured: {', '.join(self.unknown)}"] if self.unknown else [])
        if self.unknown:
            return f"{'≥ ' + duration(self.seconds) if self.seconds else 'unknown'} ({'; '.join(notes)})"
        return f"≈ {duration(self.seconds)} ({notes[0]})" if notes else duration(self.seconds)


class TimeLeft:
    """The time left of `units` run `parallel` at a time; `planned` maps a unit kind to the planner's seconds per unit."""

    def __init__(self, store: Store, units: Sequence[Unit], parallel: int, planned: Mapping[str, float] | None = None) -> None:
        self.store, self.units, self.parallel = store, list(units), max(1, parallel)
        self.planned = dict(planned or {})

    def estimate(self) -> Estimate:
        measured: dict[str, list[float]] = {}
        left: list[tuple[Unit, float | None]] = []
        rates: dict[str, float] = {}  # training unit -> steps/s from its log
        for unit in self.units:
            done, running = unit_seconds(self.store, unit.key)
            if self.store.state(unit.key) in FINAL_STATES:
                if done is not None:
                    measured.setdefault(unit.kind, []).append(done)
                continue
            left.append((unit, running))
            if unit.kind == "train" and running is not None:
                _, _, record = training_progress(self.store, unit)
                if record:
                    rates[unit.key] = steps_per_second(unit, record)
        seconds, estimated, unknown = 0.0, set(), set()
        for unit, running in left:
            if unit.kind == "train" and rates:
                step, total, _ = training_progress(self.store, unit)
                rate = rates.get(unit.key) or sum(rates.values()) / len(rates)
                seconds += (total - step) / rate
                if unit.key not in rates and "train" not in measured:
                    estimated.add("train")
            elif unit.kind in measured:
                mean = sum(measured[unit.kind]) / len(measured[unit.kind])
                seconds += max(mean - (running or 0.0), 0.0)
            elif unit.kind in self.planned:
                seconds += max(self.planned[unit.kind] - (running or 0.0), 0.0)
                estimated.add(unit.kind)
            else:
                unknown.add(unit.kind)
        return Estimate(seconds / self.parallel, sorted(estimated), sorted(unknown))
