"""Registry of scorers by name, with lazy imports so heavy packages load only when used.

Each entry maps a name to "module:factory"; the factory takes keyword options (paths, device, dtype)
and returns a `Scorer`. A misspelled name gets a "did you mean".
"""
from __future__ import annotations

import importlib
from typing import Any

from miro.errors import unknown_name_error
from miro.rewards.base import Scorer

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


def load_scorer(name: str, **options: Any) -> Scorer:
    """Import and build the scorer called `name`."""
    if name not in _entries():
        raise unknown_name_error("scorer", name, SCORERS)
    module_name, factory_name = SCORERS[name].split(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    return factory(**options)
