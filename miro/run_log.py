"""Where a training run's curves go: log.jsonl and TensorBoard event files in the run folder, and wandb when asked.

    <run>/log.jsonl      one JSON line per logged step (what the sweep's --status and ETA read)
    <run>/tensorboard/   event files: `tensorboard --logdir <run>` (a sweep links every run under its own folder)
    <run>/wandb/         only with `wandb = "<project>"`: offline unless WANDB_MODE says otherwise

Logging reads numbers the step already computed and never draws a random number, so the cadence changes
nothing that is trained; the config fields that only say where curves go (LOGGING_FIELDS) are left out of
what identifies a run. A resumed run continues where its last checkpoint left off: log lines written past it
by a killed run are dropped, and TensorBoard is told to hide the events after it (purge_step).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from miro.config import RunConfig, to_dict
from miro.errors import MiroError
from miro.files import write_text_atomic

LOG = "log.jsonl"
TENSORBOARD = "tensorboard"
LOG_POINTS = 200  # the default cadence (log_every = 0): about this many points per run, whatever its length
LOGGING_FIELDS = ("log_every", "wandb")  # RunConfig fields that decide where curves go, never what is trained


def training_identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run config (plain data) without its logging fields: what decides the trained weights."""
    return {key: value for key, value in config.items() if key not in LOGGING_FIELDS}


def log_interval(cfg: RunConfig) -> int:
    """Steps between logged points: `log_every`, or (0) about LOG_POINTS points over the run."""
    return cfg.log_every or max(1, cfg.optim.steps // LOG_POINTS)


def check_wandb(cfg: RunConfig) -> None:
    """Refuse wandb asked for where the package is missing (it is optional, never installed behind the user's back)."""
    if cfg.wandb and importlib.util.find_spec("wandb") is None:
        raise MiroError(f'wandb = "{cfg.wandb}" but the wandb package is not installed: pip install wandb, or set wandb="" '
                        "(the curves are in TensorBoard either way)")


def trim_log(path: Path, step: int) -> None:
    """Drop log lines after `step` (written past the last checkpoint by a killed run), so a resume does not repeat them."""
    if path.is_file():
        lines = path.read_text().splitlines(keepends=True)
        kept = [line for line in lines if line.endswith("\n") and json.loads(line)["step"] <= step]
        if len(kept) != len(lines):
            write_text_atomic(path, "".join(kept))


def last_record(run_dir: Path) -> dict[str, Any] | None:
    """The last complete line of a run's log.jsonl (its latest step, loss, samples/s), or None before the first."""
    path = Path(run_dir) / LOG
    try:
        lines = path.read_text().splitlines(keepends=True)
    except FileNotFoundError:
        return None
    complete = [line for line in lines if line.endswith("\n")]  # a line being written is not read
    return json.loads(complete[-1]) if complete else None


def _wandb_run(cfg: RunConfig, run_dir: Path) -> Any:
    import wandb

    run_id = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:16]  # a resumed run continues its wandb run
    return wandb.init(project=cfg.wandb, name=cfg.name, id=run_id, resume="allow", dir=str(run_dir), config=to_dict(cfg),
                      mode=os.environ.get("WANDB_MODE", "offline"))  # type: ignore[arg-type]


class RunLog:
    """The curves of one run from step `start` on (rank 0 only); `write` one record per logged step, then `close`."""

    def __init__(self, cfg: RunConfig, run_dir: Path, start: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        check_wandb(cfg)
        trim_log(run_dir / LOG, start)
        self._lines = (run_dir / LOG).open("a")
        # purge_step: a viewer hides what a killed run wrote after the checkpoint this run resumes from
        self._events = SummaryWriter(str(run_dir / TENSORBOARD), purge_step=start + 1 if start else None)
        self._wandb = _wandb_run(cfg, run_dir) if cfg.wandb else None

    def write(self, record: Mapping[str, float]) -> None:
        """Append {"step": s, "loss": ..., ...} to every destination (TensorBoard tags "train/<name>")."""
        step = int(record["step"])
        self._lines.write(json.dumps(dict(record)) + "\n")
        self._lines.flush()
        for name, value in record.items():
            if name != "step":
                self._events.add_scalar(f"train/{name}", value, step)
        self._events.flush()  # a few hundred points per run: watched live at no measurable cost
        if self._wandb is not None:
            self._wandb.log({f"train/{k}": v for k, v in record.items() if k != "step"}, step=step)

    def close(self) -> None:
        self._lines.close()
        self._events.close()
        if self._wandb is not None:
            self._wandb.finish()
