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


def scorer_groups(stages: DataStages) -> dict[str, list[str]]:
    """Group name -> its scorers, in the order of `annotate`; the scorers of no group are the group "default"."""
    grouped = {name for members in stages.groups.values() for name in members}
    groups = {group: [n for n in stages.annotate if n in members] for group, members in stages.groups.items()}
    rest = [n for n in stages.annotate if n not in grouped]
    return {**({"default": rest} if rest else {}), **groups}


def plan(data: DataConfig, stages: DataStages, store: Store, code: str) -> Prepared:
    if not stages.annotate:
        return Prepared((), "", data, "")
    scorers = list(stages.annotate)
    units, parts = [], []
    for group, members in scorer_groups(stages).items():
        options = {name: dict(stages.scorer_options.get(name, {})) for name in members}
        for shard in range(stages.annotate_shards):
            params = {"source": data.source, "path": data.path, "scorers": members, "scorer_options": options,
                      "shard": shard, "shards": stages.annotate_shards}
            key = store.register("annotate", {**params, "code": code})
            units.append(PlannedUnit(Unit("annotate", key, params), f"annotate {group} {shard + 1}/{stages.annotate_shards}",
                                     group=group))
            parts.append(str(store.work_dir(key) / ANNOTATIONS))
    keys = tuple(u.unit.key for u in units)
    assembled = store.register("assemble", {"parts": list(keys), "rewards": scorers, "code": code})
    units.append(PlannedUnit(Unit("assemble", assembled, {"parts": parts, "rewards": scorers}, depends_on=keys), "assemble + bin"))
    annotations = store.work_dir(assembled) / ANNOTATIONS
    trained_on = replace(data, annotations=str(annotations), bin_edges=str(bins_beside(annotations)))
    return Prepared(tuple(units), assembled, trained_on, str(store.work_dir(assembled)))
