"""The shapes world's data plugin: one unit renders, annotates with every analytic reward and bins the world."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from harness.datasources import Prepared
from harness.store import Store
from harness.study import DataStages
from harness.units import PlannedUnit, Unit
from miro.config import DataConfig, RunConfig, from_dict, to_dict


def plan(config: RunConfig, stages: DataStages, store: Store, code: str) -> Prepared:
    data = config.data
    key = store.register("data", {"data": to_dict(data), "code": code})
    unit = PlannedUnit(Unit("data", key, {"data": to_dict(data)}), f"data {data.source}")
    return Prepared((unit,), (key,), data, str(store.work_dir(key)))


def prepare(work_dir: Path, data: dict[str, Any], threads: int = 2) -> dict[str, Any]:
    """The "data" unit: render, annotate and bin the shapes world once, in `threads` processes; every arm of every
    study on it reads it."""
    from miro.data.build import prepare_shapes

    torch.set_num_threads(threads)
    folder = prepare_shapes(from_dict(DataConfig, data), Path(work_dir), progress=False, workers=threads)
    return {"folder": str(folder)}
