"""Models kept loaded from one unit to the next in a warm worker (harness.workers), keyed by what they are built from.

`kept(build)` wraps a builder of a model that is only read once built (a text encoder, the VAE, a reward scorer,
a detector). Outside a warm worker it is the builder itself. In one, a call whose arguments equal an earlier
call's, and whose files on disk are unchanged (every named path's size, modification time and inode; for a
folder, those of each file in it), returns the model that call built: a unit gets what a fresh process would
load, without the loading. The models live as long as their worker, which is replaced when its memory grows
past its share of the machine (harness.workers).
"""
from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_KEPT: dict[Any, Any] = {}
_KEEPING = [False]  # set once per warm worker by keep_models()


def keep_models() -> None:
    """From now on, this process keeps what `kept` builders build (called by each warm worker as it starts)."""
    _KEEPING[0] = True


def _file(path: Path) -> tuple[Any, ...]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


def identity(value: Any) -> Any:
    """A hashable form of a builder's argument in which a path on disk stands for the files it names as they are now."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return type(value).__qualname__, identity(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return tuple(sorted((str(key), identity(item)) for key, item in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(identity(item) for item in value)
    if isinstance(value, (str, Path)) and str(value) and os.path.exists(value):
        path = Path(value)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        return str(value), tuple((str(p), *_file(p)) for p in files)
    return str(value) if type(value).__name__ == "device" else value


def kept(build: Callable[..., T]) -> Callable[..., T]:
    """`build`, returning an earlier call's model for the same arguments and files in a warm worker (see above)."""
    @functools.wraps(build)
    def cached(*args: Any, **kwargs: Any) -> T:
        if not _KEEPING[0]:
            return build(*args, **kwargs)
        key = (build.__module__, build.__qualname__, identity(args), identity(kwargs))
        try:
            return _KEPT[key]  # type: ignore[no-any-return]
        except KeyError:
            pass
        except TypeError:  # an argument with no hashable form: built afresh
            return build(*args, **kwargs)
        _KEPT[key] = model = build(*args, **kwargs)
        return model

    return cached
