"""Writing files so that a crash never leaves half of one, and clearing what killed writers left behind.

Every writer goes through `atomic_path`: it writes to a hidden temporary name beside the target,
`.<name>.tmp-<host>-<pid>` (unique on a shared filesystem), then renames it over the target, so a reader
sees the old file or the new one, never a part. A writer killed between the two leaves its temporary
behind (for a checkpoint, a whole folder of weights); `remove_leftovers` deletes those of writers that are
gone, which every writer of a folder runs before it writes there again. A folder that must have one writer at a
time (a training run) is held with `lock_folder`.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

from safetensors import SafetensorError

from miro.errors import MiroError, corrupt_file_error

T = TypeVar("T")

LOCK = ".lock"  # the lock file of a folder's one writer (lock_folder)
TEMP = re.compile(r"^\..+\.tmp-(?P<host>[^/]+)-(?P<pid>\d+)$")
FOREIGN_LEFTOVER_S = 24 * 3600  # a temporary of another host's writer is judged dead after this long


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path to write (a file, or a folder the body creates); on success it replaces `path`.

    On an error (a full disk, say) the temporary is removed and `path` is left as it was.
    """
    path = Path(path)
    tmp = temp_path(path)
    _remove(tmp)
    try:
        yield tmp
        if tmp.is_dir() and path.is_dir():  # a folder is replaced whole (rename cannot replace a non-empty one)
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_checked(path: Path, reader: Callable[[Path], T], fix: str) -> T:
    """`reader(path)`, with a file that cannot be read as what it should be refused in one line naming `fix`.

    (A file that is missing is left to the caller's own message, or to the OS error.)
    """
    try:
        return reader(path)
    except (OSError, RuntimeError, ValueError, EOFError, KeyError, SafetensorError, pickle.UnpicklingError) as error:
        if isinstance(error, OSError) and not path.is_file():
            raise
        raise corrupt_file_error(path, error, fix) from None


def lock_folder(folder: Path, writer: str) -> IO[str]:
    """Make this process the one writer of `folder` (its `.lock` file, locked) until the returned handle is closed
    or the process ends, or refuse in one line naming the writer that holds it. The operating system frees the
    lock however the process ends (a kill -9 included), so a killed writer never leaves it stuck."""
    import fcntl

    handle = (folder / LOCK).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise MiroError(f"{folder} is being written by {holder}; wait for it to end, or give another folder") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{writer} (pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')})")
    handle.flush()
    return handle


def _writer_gone(host: str, pid: int, mtime: float) -> bool:
    if host != socket.gethostname():
        return time.time() - mtime > FOREIGN_LEFTOVER_S
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def remove_leftovers(folder: Path | str) -> list[Path]:
    """Delete the temporaries in `folder` (not below it) whose writers are gone; returns what it removed."""
    folder = Path(folder)
    removed = []
    for entry in folder.iterdir() if folder.is_dir() else []:
        match = TEMP.match(entry.name)
        if not match:
            continue
        try:
            gone = _writer_gone(match["host"], int(match["pid"]), entry.lstat().st_mtime)
        except FileNotFoundError:
            continue
        if gone:
            _remove(entry)
            removed.append(entry)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
