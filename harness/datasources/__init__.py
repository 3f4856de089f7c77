"""Data plugins: how a study's `data.source` becomes the units that prepare it, and the data training reads.

`plan_data` dispatches on the source; nothing else in harness/ knows what a source is. The shapes world is one
plugin (it renders and annotates itself in one unit); image folders and webdataset shards are another (reward
annotation as an array of shards, then one unit that merges them and fits the bins every arm shares).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from harness.store import Store
from harness.study import DataStages
from harness.units import PlannedUnit
from miro.config import DataConfig
from miro.errors import unknown_name_error

# data.source -> "module:function" of its plugin (imported when a study uses it)
PLUGINS = {"shapes": "harness.datasources.shapes:plan", "webdataset": "harness.datasources.annotated:plan",
           "folder": "harness.datasources.annotated:plan"}


@dataclass(frozen=True)
class Prepared:
    """What a data plugin planned: its units in dependency order, the key training waits for ("" for none), the
    data config training reads (annotations and bins filled in) and the folder handed to the trainer."""

    units: tuple[PlannedUnit, ...]
    ready: str
    data: DataConfig
    data_root: str


def plan_data(data: DataConfig, stages: DataStages, store: Store, code: str) -> Prepared:
    """Register the units that prepare `data` (idempotent: two arms on the same data share them)."""
    if data.source not in PLUGINS:
        raise unknown_name_error("data source plugin", data.source, PLUGINS)
    module, _, name = PLUGINS[data.source].partition(":")
    plan: Callable[[DataConfig, DataStages, Store, str], Prepared] = getattr(importlib.import_module(module), name)
    return plan(data, stages, store, code)
