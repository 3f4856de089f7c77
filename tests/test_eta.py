"""The sweep's time left: each unit kind's measured duration, not an equal share per unit."""
import json

from harness.eta import TimeLeft
from harness.store import Store
from harness.units import Unit


def finish(store: Store, key: str, start: str, end: str) -> None:
    store.set_state(key, "done")  # the status record; the events below are what durations are read from
    with (store.unit_dir(key) / "events.jsonl").open("w") as log:
        for event, when in (("running", start), ("done", end)):
            log.write(json.dumps({"time": when, "event": event}) + "\n")


def test_time_left_charges_each_kind_its_own_measured_duration(tmp_path):
    store = Store(tmp_path)
    train = [Unit("train", store.register("train", {"arm": i})) for i in range(3)]
    evals = [Unit("evaluate", store.register("evaluate", {"arm": i})) for i in range(4)]
    finish(store, train[0].key, "2026-01-01T00:00:00+0000", "2026-01-01T00:03:00+0000")  # 180 s
    finish(store, evals[0].key, "2026-01-01T00:03:00+0000", "2026-01-01T00:03:20+0000")  # 20 s
    seconds, unknown = TimeLeft(store, train + evals, parallel=2).estimate()
    assert unknown == [] and seconds == (2 * 180 + 3 * 20) / 2
    assert TimeLeft(store, train + evals, parallel=2).postfix() == {"left": "3m30s"}
    control = Unit("control", store.register("control", {"arm": 0}))
    assert TimeLeft(store, [*train, control], parallel=1).postfix()["left"].endswith("(not yet measured: control)")
    assert TimeLeft(store, [control], parallel=1).postfix() == {"left": "unknown (not yet measured: control)"}
