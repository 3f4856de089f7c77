"""Data plugins: how a study's `data.source` becomes the units that prepare it, and the data training reads.

`plan_data` dispatches on the source; nothing else in harness/ knows what a source is. The shapes world is one
plugin (it renders and annotates itself in one unit); image folders and webdataset shards are another (reward
annotation as an array of shards, then one unit that merges them and fits the bins every arm shares, and the
VAE latents and T5 features precomputed as another array when the study asks).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from harness.store import Store
from harness.study import DataStages
from harness.units import PlannedUnit
from miro.config import DataConfig, RunConfig
from miro.errors import unknown_name_error

# data.source -> "module:function" of its plugin (imported when a study uses it)
PLUGINS = {"shapes": "harness.datasources.shapes:plan", "webdataset": "harness.datasources.annotated:plan",
           "folder": "harness.datasources.annotated:plan"}


@dataclass(frozen=True)
class Prepared:
    """What a data plugin planned: its units in dependency order, the keys training waits for, the data config
    training reads (annotations, bins and features filled in) and the folder handed to the trainer."""

    units: tuple[PlannedUnit, ...]
    ready: tuple[str, ...]
    data: DataConfig
    data_root: str


def plan_data(config: RunConfig, stages: DataStages, store: Store, code: str) -> Prepared:
    """Register the units that prepare an arm's `data` (idempotent: two arms on the same data share them); the
    arm's text encoder and VAE are what precomputation encodes with."""
    source = config.data.source
    if source not in PLUGINS:
        raise unknown_name_error("data source plugin", source, PLUGINS)
    module, _, name = PLUGINS[source].partition(":")
    plan: Callable[[RunConfig, DataStages, Store, str], Prepared] = getattr(importlib.import_module(module), name)
    return plan(config, stages, store, code)
