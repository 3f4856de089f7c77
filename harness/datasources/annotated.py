"""Image folders and webdataset shards: reward annotation as an array of shards, then one unit that merges the
shards and fits the bins. With no annotation scorers in the study, the user's `data.annotations` is used as is.

When the study precomputes, the arm's VAE latents and T5 caption features are encoded once as another array
(miro.data.precompute) into one features folder that training then reads instead of running the encoders.
The shards read only the images, so they run alongside the annotation; every shard writes its own files.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from harness.datasources import Prepared
from harness.identity import Identities, by_content, option_fields
from harness.store import Store, unit_key
from harness.study import DataStages
from harness.tasks import ANNOTATIONS
from harness.units import PlannedUnit, Unit
from miro.config import DataConfig, RunConfig
from miro.rewards.binning import bins_beside

FEATURES = "features"  # the store's folder of precomputed feature sets, one per encoders x data x sharding


def scorer_groups(stages: DataStages) -> dict[str, list[str]]:
    """Group name -> its scorers, in the order of `annotate`; the scorers of no group are the group "default"."""
    grouped = {name for members in stages.groups.values() for name in members}
    groups = {group: [n for n in stages.annotate if n in members] for group, members in stages.groups.items()}
    rest = [n for n in stages.annotate if n not in grouped]
    return {**({"default": rest} if rest else {}), **groups}


def encoders(config: RunConfig) -> dict[str, Any]:
    """What precomputation encodes with: the arm's T5 and VAE ("" for the one it does not use) and sizes."""
    return {"vae_path": config.latents.vae_path if config.latents.space == "vae" else "",
            "text_path": config.text.path if config.text.encoder == "t5" else "",
            "resolution": config.data.resolution, "max_tokens": config.text.max_tokens}


def annotation_units(data: DataConfig, stages: DataStages, store: Store, code: str, identify: Identities) -> tuple[list[PlannedUnit], DataConfig]:
    """The annotation shards and their assembly, and the data config that reads the assembled file."""
    if not stages.annotate:
        return [], data
    scorers = list(stages.annotate)
    units, parts = [], []
    for group, members in scorer_groups(stages).items():
        options = {name: dict(stages.scorer_options.get(name, {})) for name in members}
        for shard in range(stages.annotate_shards):
            params = {"source": data.source, "path": data.path, "scorers": members, "scorer_options": options,
                      "shard": shard, "shards": stages.annotate_shards}
            key = store.register("annotate", *by_content({**params, "code": code}, ["path", *option_fields("scorer_options", options)],
                                                         identify))
            units.append(PlannedUnit(Unit("annotate", key, {**params, "max_failed": stages.max_failed}),
                                     f"annotate {group} {shard + 1}/{stages.annotate_shards}",
                                     group=group))
            parts.append(str(store.work_dir(key) / ANNOTATIONS))
    keys = tuple(u.unit.key for u in units)
    assembled = store.register("assemble", {"parts": list(keys), "rewards": scorers, "code": code})
    units.append(PlannedUnit(Unit("assemble", assembled, {"parts": parts, "rewards": scorers}, depends_on=keys), "assemble + bin"))
    annotations = store.work_dir(assembled) / ANNOTATIONS
    return units, replace(data, annotations=str(annotations), bin_edges=str(bins_beside(annotations)))


def precompute_units(config: RunConfig, stages: DataStages, store: Store, code: str, identify: Identities) -> tuple[list[PlannedUnit], DataConfig]:
    """The precompute shards of the arm's encoders, and the data config that reads their features folder."""
    data, encoded = config.data, encoders(config)
    if not stages.precompute or not (encoded["vae_path"] or encoded["text_path"]):
        return [], data
    feature_set, reads = by_content({"source": data.source, "path": data.path, **encoded, "shards": stages.precompute_shards,
                                     "code": code}, ["path", "vae_path", "text_path"], identify)
    out = store.root / FEATURES / unit_key("features", feature_set)
    units = []
    for shard in range(stages.precompute_shards):
        params = {"source": data.source, "path": data.path, "out": str(out), **encoded, "shard": shard,
                  "shards": stages.precompute_shards, "max_failed": stages.max_failed}  # max_failed: not in the key
        key = store.register("precompute", {**feature_set, "shard": shard}, reads)
        units.append(PlannedUnit(Unit("precompute", key, params), f"precompute {shard + 1}/{stages.precompute_shards}"))
    return units, replace(data, features=str(out))


def plan(config: RunConfig, stages: DataStages, store: Store, code: str) -> Prepared:
    identify = Identities(store)
    annotation, annotated = annotation_units(config.data, stages, store, code, identify)
    features, encoded = precompute_units(config, stages, store, code, identify)
    units = annotation + features
    ready = tuple(u.unit.key for u in (annotation[-1:] + features))  # the assembly and every precompute shard
    data = replace(annotated, features=encoded.features)
    return Prepared(tuple(units), ready, data, str(store.work_dir(annotation[-1].unit.key)) if annotation else "")
