"""The shapes world's data plugin: one unit renders, annotates with every analytic reward and bins the world."""
from __future__ import annotations

from harness.datasources import Prepared
from harness.store import Store
from harness.study import DataStages
from harness.units import PlannedUnit, Unit
from miro.config import DataConfig, to_dict


def plan(data: DataConfig, stages: DataStages, store: Store, code: str) -> Prepared:
    key = store.register("data", {"data": to_dict(data), "code": code})
    unit = PlannedUnit(Unit("data", key, {"data": to_dict(data)}), f"data {data.source}")
    return Prepared((unit,), key, data, str(store.work_dir(key)))
