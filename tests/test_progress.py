"""What a sweep shows while it runs: running training units with their step of their total and last loss, and in
a log file a line per finished unit (or every few minutes), never one per poll."""
import io
import json

from harness.progress import Display, running_lines
from harness.store import Store
from harness.tasks import run_dir
from harness.units import Unit


def test_running_training_units_show_their_step_and_last_loss_and_a_log_file_gets_a_line_per_finished_unit(tmp_path):
    store = Store(tmp_path)
    train = Unit("train", store.register("train", {"arm": 0}), {"config": {"optim": {"steps": 400, "batch_size": 32}}})
    evaluate = Unit("evaluate", store.register("evaluate", {"arm": 0}))
    labels = {train.key: "train miro seed 0", evaluate.key: "evaluate shapes miro seed 0 step 100"}
    store.set_state(train.key, "running")
    run = run_dir(store.work_dir(train.key))
    run.mkdir(parents=True)
    (run / "log.jsonl").write_text(json.dumps({"step": 120, "loss": 0.41234, "samples_per_s": 64.0}) + "\n"
                                   + '{"step": 122, "lo')  # a line being written is not read
    (line,) = running_lines(store, [train, evaluate], labels)
    assert line.startswith("  train miro seed 0  0m0") and line.endswith("step 120/400, loss 0.4123")

    log = io.StringIO()  # not a terminal: plain lines
    with Display(store, [train, evaluate], labels, lambda: "≈ 3m00s (estimate for: evaluate)", stream=log) as display:
        for _ in range(5):  # five polls, nothing finished
            display.update({}, submitted={train.key})
        display.update({evaluate.key: "done"}, submitted={train.key})
    lines = log.getvalue().splitlines()
    heads = [text for text in lines if "units:" in text]
    assert len(heads) == 2 and "0 done, 0 failed, 0 blocked, 1 running, 1 waiting of 2" in heads[0]
    assert "1 done" in heads[1] and heads[1].endswith("time left ≈ 3m00s (estimate for: evaluate)")
    assert sum("step 120/400, loss 0.4123" in text for text in lines) == 2
