"""Image folders and webdataset shards: reward annotation as an array of shards, then one unit that merges the
shards and fits the bins. With no annotation scorers in the study, the user's `data.annotations` is used as is."""
from __future__ import annotations

from dataclasses import replace

from harness.datasources import Prepared
from harness.store import Store
from harness.study import DataStages
from harness.tasks import ANNOTATIONS
from harness.units import PlannedUnit, Unit
from miro.config import DataConfig
from miro.rewards.binning import bins_beside


def plan(data: DataConfig, stages: DataStages, store: Store, code: str) -> Prepared:
    if not stages.annotate:
        return Prepared((), "", data, "")
    scorers = list(stages.annotate)
    options = {name: dict(stages.scorer_options.get(name, {})) for name in scorers}
    units, parts = [], []
    for shard in range(stages.annotate_shards):
        params = {"source": data.source, "path": data.path, "scorers": scorers, "scorer_options": options,
                  "shard": shard, "shards": stages.annotate_shards}
        key = store.register("annotate", {**params, "code": code})
        units.append(PlannedUnit(Unit("annotate", key, params), f"annotate {shard + 1}/{stages.annotate_shards}"))
        parts.append(str(store.work_dir(key) / ANNOTATIONS))
    keys = tuple(u.unit.key for u in units)
    assembled = store.register("assemble", {"parts": list(keys), "rewards": scorers, "code": code})
    units.append(PlannedUnit(Unit("assemble", assembled, {"parts": parts, "rewards": scorers}, depends_on=keys), "assemble + bin"))
    annotations = store.work_dir(assembled) / ANNOTATIONS
    trained_on = replace(data, annotations=str(annotations), bin_edges=str(bins_beside(annotations)))
    return Prepared(tuple(units), assembled, trained_on, str(store.work_dir(assembled)))
