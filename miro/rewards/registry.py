"""Registry of scorers by name, with lazy imports so heavy packages load only when used.

Each entry maps a name to "module:factory"; the factory takes keyword options (paths, device, dtype)
and returns a `Scorer`. A misspelled name gets a "did you mean".
"""
from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable
from typing import Any

from miro.errors import unknown_name_error
from miro.rewards.base import Scorer
from miro.warm import kept

# name -> "module:factory". Real reward models and the shapes world's analytic rewards live side by side;
# their entries are listed in small modules that only call `register`, imported on first use.
SCORERS: dict[str, str] = {}
ENTRY_MODULES = ("miro.rewards.shapes_entries", "miro.rewards.real_entries")


def register(name: str, target: str) -> None:
    """Add a scorer entry; `target` is "package.module:factory"."""
    SCORERS[name] = target


def _entries() -> dict[str, str]:
    for module in ENTRY_MODULES:
        importlib.import_module(module)
    return SCORERS


def scorer_names() -> list[str]:
    return sorted(_entries())


def factory_of(name: str) -> Callable[..., Scorer]:
    """The factory of the scorer called `name` (its module is imported now)."""
    if name not in _entries():
        raise unknown_name_error("scorer", name, SCORERS)
    module_name, factory_name = SCORERS[name].split(":")
    return typing.cast(Callable[..., Scorer], getattr(importlib.import_module(module_name), factory_name))


# a factory option -> the module constant naming where its file is published (MODEL, CHECKPOINT, ...)
_SOURCE_CONSTANTS = {"model_dir": "MODEL", "processor_dir": "PROCESSOR", "clip_weights": "CLIP"}


def source_of(name: str, option: str) -> Any:
    """Where the file of a scorer's path option is published (a `sources.Source`), or None when unknown."""
    module = importlib.import_module(SCORERS[name].split(":")[0]) if name in _entries() else None
    constant = getattr(module, _SOURCE_CONSTANTS.get(option, option.upper()), None)
    constant = getattr(module, option.upper() + "S", None) if constant is None else constant
    if isinstance(constant, dict):  # one per version (hpsv2): the default version's file
        constant = constant.get(inspect.signature(factory_of(name)).parameters["version"].default)
    return constant if hasattr(constant, "how_to_get") else None


@kept  # a scorer only reads its models: a warm worker keeps it for the next unit
def load_scorer(name: str, **options: Any) -> Scorer:
    """Import and build the scorer called `name`."""
    return factory_of(name)(**options)
