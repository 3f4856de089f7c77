"""An evaluation's metrics as TensorBoard scalars at its checkpoint's step, in <out>/tensorboard/, so the sweep's
TensorBoard view (harness.board) draws them on the training run's step axis: tags eval/<suite>/<metric>."""
from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from miro.run_log import TENSORBOARD


def write_scalars(out: Path, suite: str, summary: Mapping[str, Any]) -> None:
    """One scalar per metric with a value; a rerun replaces the unit's event file (no point shown twice)."""
    from torch.utils.tensorboard import SummaryWriter

    folder = Path(out) / TENSORBOARD
    shutil.rmtree(folder, ignore_errors=True)
    step = int(summary["checkpoint"]["step"])
    with SummaryWriter(str(folder)) as writer:
        for name, metric in summary["metrics"].items():
            value = metric.get("value") if isinstance(metric, Mapping) else None
            if isinstance(value, (int, float)):
                writer.add_scalar(f"eval/{suite}/{name}", value, step)
