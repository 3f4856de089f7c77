"""The sweep's time left: each unit kind's measured duration, a training unit's own step rate, the planner's
estimate (said to be one) until a kind is measured, and the kinds nothing is known of named."""
import json

from harness.eta import TimeLeft
from harness.store import Store
from harness.tasks import run_dir
from harness.units import Unit


def finish(store: Store, key: str, start: str, end: str) -> None:
    store.set_state(key, "done")  # the status record; the events below are what durations are read from
    with (store.unit_dir(key) / "events.jsonl").open("w") as log:
        for event, when in (("running", start), ("done", end)):
            log.write(json.dumps({"time": when, "event": event}) + "\n")


def training(store: Store, arm: int, steps: int = 400, batch: int = 32) -> Unit:
    params = {"config": {"optim": {"steps": steps, "batch_size": batch}}}
    return Unit("train", store.register("train", {"arm": arm}), params)


def test_time_left_charges_each_kind_its_own_measured_duration(tmp_path):
    store = Store(tmp_path)
    train = [training(store, i) for i in range(3)]
    evals = [Unit("evaluate", store.register("evaluate", {"arm": i})) for i in range(4)]
    finish(store, train[0].key, "2026-01-01T00:00:00+0000", "2026-01-01T00:03:00+0000")  # 180 s
    finish(store, evals[0].key, "2026-01-01T00:03:00+0000", "2026-01-01T00:03:20+0000")  # 20 s
    left = TimeLeft(store, train + evals, parallel=2).estimate()
    assert left.unknown == left.estimated == [] and left.seconds == (2 * 180 + 3 * 20) / 2 and left.text == "3m30s"
    control = Unit("control", store.register("control", {"arm": 0}))
    assert TimeLeft(store, [*train, control], parallel=1).estimate().text.endswith("(not yet measured: control)")
    assert TimeLeft(store, [control], parallel=1).estimate().text == "unknown (not yet measured: control)"
    planned = TimeLeft(store, [control], parallel=1, planned={"control": 90.0}).estimate()
    assert planned.text == "≈ 1m30s (estimate for: control)"
    both = TimeLeft(store, [control, Unit("tune", store.register("tune", {"arm": 0}))], parallel=1, planned={"control": 90.0})
    assert both.estimate().text == "≥ 1m30s (estimate for: control; not yet measured: tune)"


def test_a_training_unit_is_charged_its_steps_left_at_the_rate_its_log_shows(tmp_path):
    store = Store(tmp_path)
    first, second = training(store, 0), training(store, 1)
    store.set_state(first.key, "running")  # 100 of 400 steps at 64 samples/s = 2 steps/s
    run = run_dir(store.work_dir(first.key))
    run.mkdir(parents=True)
    (run / "log.jsonl").write_text(json.dumps({"step": 100, "loss": 0.5, "samples_per_s": 64.0}) + "\n")
    left = TimeLeft(store, [first, second], parallel=1).estimate()
    assert left.seconds == 300 / 2 + 400 / 2 and left.estimated == ["train"]  # the second one at the first one's rate
