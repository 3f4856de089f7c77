"""Content identity of the files and folders a result is computed from, cheap enough to take on every run.

A file's identity is the sha256 of its bytes when it is at most `WHOLE_BYTES`; a larger file (weights, a
webdataset shard) is identified by its size and `BLOCKS` blocks of `BLOCK` bytes spread evenly over it, first
and last included, so a 10 GB checkpoint costs 1 MiB of reading, not 10 GB. Any re-saved or retrained weights
file and any rewritten shard differ in those blocks; a rewrite of a few bytes of a large file that keeps its
size can go unseen (the weights file's sha256 pin, `python -m miro weights check`, reads every byte).

A folder's identity covers the relative path and identity of every file below it (hidden names skipped: the
temporaries of `miro.files` and caches), so a changed, added or removed file changes it. Identities are
cached in `cache` by (path, size, mtime, inode): a run reads only the files that changed since the last one.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from miro.files import write_json_atomic

WHOLE_BYTES = 64 << 20
BLOCK = 64 << 10
BLOCKS = 16
ABSENT = "absent"  # the identity of a path where nothing is


def file_identity(path: Path) -> str:
    """The identity of one file's bytes (see the module docstring); 32 hex digits."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as handle:
        if size <= WHOLE_BYTES:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        else:
            digest.update(f"size {size}\n".encode())
            for i in range(BLOCKS):
                handle.seek((size - BLOCK) * i // (BLOCKS - 1))
                digest.update(handle.read(BLOCK))
    return digest.hexdigest()[:32]


def _files(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, stat) of every file at or below `root`, hidden names skipped, in a fixed order."""
    if root.is_file():
        yield "", root.stat()
        return
    for folder, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(n for n in names if not n.startswith(".")):
            path = Path(folder) / name
            if path.is_file():
                yield path.relative_to(root).as_posix(), path.stat()


def content_identity(path: Path | str, cache: Path) -> str:
    """The identity of a file or a folder (`ABSENT` when nothing is there), reading only what changed since the
    identities recorded in `cache` (a folder; one small record per path asked for)."""
    root = Path(path).expanduser().absolute()
    if not root.exists():
        return ABSENT
    record_path = cache / f"{hashlib.sha256(str(root).encode()).hexdigest()[:32]}.json"
    try:
        known = json.loads(record_path.read_text()).get("files", {})
    except (OSError, ValueError, AttributeError):  # no record yet, or one damaged from outside: identify again
        known = {}
    files: dict[str, list[object]] = {}
    for relative, stat in _files(root):
        seen = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
        previous = known.get(relative)
        identity = previous[3] if isinstance(previous, list) and previous[:3] == seen else \
            file_identity(root / relative if relative else root)
        files[relative] = [*seen, identity]
    if files != known:
        cache.mkdir(parents=True, exist_ok=True)
        write_json_atomic(record_path, {"path": str(root), "files": files})
    if root.is_file():
        return str(files[""][3])
    lines = "".join(f"{relative} {entry[3]}\n" for relative, entry in files.items())
    return hashlib.sha256(lines.encode()).hexdigest()[:32]


def combined_identity(paths: Sequence[Path | str], cache: Path) -> str:
    """One identity for several paths read together, in order (the shards of a webdataset pattern)."""
    if len(paths) == 1:
        return content_identity(paths[0], cache)
    lines = "".join(f"{content_identity(p, cache)}\n" for p in paths)
    return hashlib.sha256(lines.encode()).hexdigest()[:32]
