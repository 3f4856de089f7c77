"""The store of units of work: one folder per unit, named by a hash of everything that decides its result.

A unit's key is `<kind>-<hash>` of its resolved inputs (config, code version, and the content of the files it
reads: whatever the caller says decides the result, see harness.identity), so two sweeps that need the same unit
find the same folder and compute it once, and a finished unit is skipped when a sweep is run again. Layout of `<root>/units/<key>/`:

    inputs.json    what the key hashes (written once; a later writer must agree)
    reads.json     input field -> path, for the inputs the key holds by content (harness.identity)
    status.json    pending | running | done | failed (with traceback) | cancelled, replaced atomically
    events.jsonl   every status change and requeue, with host, pid, job id and the job's log files
    manifest.json  code, packages, device of the latest attempt
    outputs.json   what the unit's function returned (written before the status says done)
    claim.json     present while a runner owns the unit
    work/          the unit function's own folder (checkpoints, images, ...); nothing here ever deletes it

Paths a unit records in outputs.json are written relative to the store's root, so a store moved to another
mount (or seen under another path by a compute node) still reads; `Store.path` resolves them. Records are
replaced atomically (miro.files); a record damaged from outside (a truncated status.json, a garbage
inputs.json) is reported on that unit alone, with the fix, and never stops other units or `--status`.

Concurrency: a runner claims a unit by hard-linking a fully written claim file to claim.json (a link fails
when the name exists, atomically on local disks and on NFS v3+/Lustre/GPFS, like O_EXCL), so a claim is
never seen half-written: a claim.json that does not parse was damaged and is stale at once. The claim
names its runner by an owner string (harness.units.owner_token: the job id inside a job,
so a requeued job takes its own claim back). While it works it touches the claim every `heartbeat_s`. A claim
is stale, and another runner may take it over, when its heartbeat is older than `stale_after_s`, or at once
when it names a process on this host that no longer exists. Breaking a stale claim renames it to a unique
tombstone first, so of two runners that both judge it stale only one wins.
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miro.errors import MiroError, corrupt_file_error
from miro.files import remove_leftovers, temp_path, write_json_atomic

STATES = ("pending", "running", "done", "failed", "cancelled")
FINAL_STATES = ("done", "failed", "cancelled")
KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]*")


def _plain(value: Any) -> Any:
    """JSON form of the few non-JSON types a resolved input may hold; anything else is refused."""
    if isinstance(value, Path):
        return value.as_posix()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not a plain value")


def canonical_json(data: Any) -> str:
    """One text per value: sorted keys, no whitespace, no NaN; the same on every machine and Python."""
    try:
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_plain)
    except (TypeError, ValueError) as error:
        raise MiroError(f"unit inputs must be plain JSON values (dict, list, str, number, bool, None, Path): {error}") from None


def unit_key(kind: str, inputs: dict[str, Any]) -> str:
    """`<kind>-<16 hex>` from the SHA-256 of the canonical JSON of (kind, inputs)."""
    if not KIND_PATTERN.fullmatch(kind):
        raise MiroError(f'unit kind "{kind}" must be lower case letters, digits and "_", starting with a letter')
    digest = hashlib.sha256(canonical_json({"kind": kind, "inputs": inputs}).encode()).hexdigest()
    return f"{kind}-{digest[:16]}"


def _pid_gone(host: str, pid: int) -> bool:
    """True when `pid` names a process of this host that has exited (its runner died holding the claim)."""
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        pass
    return False


def _read_json(path: Path, fix: str = "move the unit's folder away and run again") -> Any:
    """A record of the store, or a one-line error naming the file and the fix when it does not parse."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise corrupt_file_error(path, error, fix) from None


def _claim_content(owner: str) -> dict[str, Any]:
    return {"owner": owner, "host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _detail(record: dict[str, Any]) -> str | None:
    """Why a unit is where it is: the reason it was cancelled, or the last line of its traceback."""
    if record.get("reason"):
        return str(record["reason"])
    lines = str(record.get("traceback") or "").strip().splitlines()
    return lines[-1] if lines else None


@dataclass(frozen=True)
class UnitStatus:
    """One line of `Store.status()`."""

    key: str
    kind: str
    state: str
    updated: str | None
    detail: str | None  # the last line of a traceback, or why a unit was cancelled
    claimed_by: str | None  # the owner of a live claim


@dataclass(frozen=True)
class Store:
    """A store rooted at `root` (any folder every runner can see: a laptop disk or a cluster's shared FS)."""

    root: Path
    heartbeat_s: float = 30.0
    stale_after_s: float = 600.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).absolute())
        if self.stale_after_s <= 2 * self.heartbeat_s:
            raise MiroError(f"Store.stale_after_s ({self.stale_after_s}) must exceed twice heartbeat_s ({self.heartbeat_s}), or live claims look stale")

    # ---- folders and records ----------------------------------------------------------------------
    def unit_dir(self, key: str) -> Path:
        return self.root / "units" / key

    def work_dir(self, key: str) -> Path:
        """The unit function's own folder."""
        return self.unit_dir(key) / "work"

    def path(self, recorded: str) -> Path:
        """An absolute path for a path recorded in the store (relative to its root, or absolute)."""
        return self.root / recorded

    def register(self, kind: str, inputs: dict[str, Any], reads: dict[str, str] | None = None) -> str:
        """Create the unit's folder (once) and return its key; registering again is a no-op.

        `reads`: input field -> the path it was read from, for the fields the key holds by content
        (harness.identity); kept in reads.json, the latest paths, which the key does not hash.
        A damaged inputs.json is written again: its content is what the key hashes, so it is known.
        """
        key = unit_key(kind, inputs)
        folder = self.unit_dir(key)
        path = folder / "inputs.json"
        record = json.loads(canonical_json({"kind": kind, "inputs": inputs}))
        if path.is_file():
            self._note_reads(key, reads or {})
            remove_leftovers(folder)  # temporaries of records whose writers were killed
            try:
                existing = _read_json(path)
            except MiroError:
                write_json_atomic(path, record)
                self.log_event(key, "inputs repaired", reason=f"{path} did not parse; rewritten from the key's inputs")
                return key
            if existing != record:
                raise MiroError(f"{path} does not match its key {key}: the store is corrupt; move the folder away and run again")
            return key
        (folder / "work").mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, record)
        self._note_reads(key, reads or {})
        if not (folder / "status.json").is_file():
            self.set_state(key, "pending")
        return key

    def inputs(self, key: str) -> dict[str, Any]:
        path = self.unit_dir(key) / "inputs.json"
        if not path.is_file():
            raise MiroError(f"unit {key} is not in the store at {self.root}: register it first (Store.register)")
        return dict(_read_json(path, "register the unit again (rerun the sweep) to rewrite it"))

    def _note_reads(self, key: str, reads: dict[str, str]) -> None:
        try:
            same = self.reads(key) == reads
        except MiroError:  # damaged from outside: it is known, write it again
            same = False
        if not same:
            write_json_atomic(self.unit_dir(key) / "reads.json", reads)

    def reads(self, key: str) -> dict[str, str]:
        """Input field -> path, for the inputs its key holds by content ({} for a unit that reads no file)."""
        path = self.unit_dir(key) / "reads.json"
        return dict(_read_json(path, "register the unit again (rerun the sweep) to rewrite it")) if path.is_file() else {}

    def record(self, key: str) -> dict[str, Any]:
        """The unit's status record ({"state": ..., "updated": ..., ...}); a damaged one reads as failed, with the fix."""
        path = self.unit_dir(key) / "status.json"
        if not path.is_file():
            return {"state": "pending", "updated": None}
        try:
            record = _read_json(path, "rerun the sweep with --retry to redo the unit")
            if record.get("state") not in STATES:
                raise corrupt_file_error(path, f"unknown state {record.get('state')!r}", "rerun the sweep with --retry to redo the unit")
            outputs = self.unit_dir(key) / "outputs.json"
            if record["state"] == "done" and outputs.is_file():  # a finished unit whose outputs were damaged is not finished
                _read_json(outputs, "rerun the sweep with --retry to redo the unit")
        except MiroError as error:
            return {"state": "failed", "updated": None, "reason": str(error)}
        return dict(record)

    def state(self, key: str) -> str:
        return str(self.record(key)["state"])

    def set_state(self, key: str, state: str, **fields: Any) -> None:
        """Replace the status record atomically and append the change to events.jsonl."""
        if state not in STATES:
            raise MiroError(f'unknown unit state "{state}"; allowed: {", ".join(STATES)}')
        record = {"state": state, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": socket.gethostname(),
                  "pid": os.getpid(), **fields}
        write_json_atomic(self.unit_dir(key) / "status.json", record)
        self.log_event(key, state, **fields)

    def log_event(self, key: str, event: str, **fields: Any) -> None:
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "event": event, "host": socket.gethostname(),
                "pid": os.getpid(), **fields}
        with (self.unit_dir(key) / "events.jsonl").open("a") as log:
            log.write(json.dumps(line, default=str) + "\n")

    def attempts(self, key: str) -> int:
        """How many times a runner has started the unit (requeues included), from events.jsonl (a torn last line is skipped)."""
        path = self.unit_dir(key) / "events.jsonl"
        count = 0
        for line in path.read_text().splitlines() if path.is_file() else []:
            try:
                count += json.loads(line).get("event") == "running"
            except (json.JSONDecodeError, AttributeError):
                continue
        return count

    def write_outputs(self, key: str, outputs: dict[str, Any]) -> None:
        """Record what the unit's function returned; paths inside the store are written relative to its root."""
        write_json_atomic(self.unit_dir(key) / "outputs.json", self._relative(outputs))

    def _relative(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self._relative(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._relative(v) for v in value]
        if isinstance(value, (str, Path)) and Path(value).is_absolute() and Path(value).is_relative_to(self.root):
            return Path(value).relative_to(self.root).as_posix()
        return value

    def outputs(self, key: str) -> dict[str, Any]:
        path = self.unit_dir(key) / "outputs.json"
        if not path.is_file():
            raise MiroError(f"unit {key} has no outputs yet (state: {self.state(key)})")
        return dict(_read_json(path, "rerun the sweep with --retry to redo the unit"))

    def status(self) -> dict[str, UnitStatus]:
        """A summary line per unit in the store; a damaged record shows on its unit's line."""
        summary: dict[str, UnitStatus] = {}
        folder = self.root / "units"
        for unit in sorted(folder.iterdir()) if folder.is_dir() else []:
            if not (unit / "inputs.json").is_file():
                continue
            record = self.record(unit.name)
            summary[unit.name] = UnitStatus(
                key=unit.name, kind=unit.name.rsplit("-", 1)[0], state=record["state"],
                updated=record.get("updated"), detail=_detail(record), claimed_by=self.live_claim(unit.name))
        return summary

    # ---- claims -----------------------------------------------------------------------------------
    def _claim_path(self, key: str) -> Path:
        return self.unit_dir(key) / "claim.json"

    def _read_claim(self, key: str) -> tuple[dict[str, Any], float] | None:
        """(content, age of the last heartbeat in s), or None without a claim. A half-written claim reads as {}."""
        path = self._claim_path(key)
        try:
            text, mtime = path.read_text(), path.stat().st_mtime
        except FileNotFoundError:
            return None
        try:
            content = json.loads(text)
        except json.JSONDecodeError:
            content = {}
        return (content if isinstance(content, dict) else {}), time.time() - mtime

    def _is_stale(self, claim: tuple[dict[str, Any], float]) -> bool:
        """Stale: its heartbeat is old, its process is gone, or it does not parse (claims are linked in whole)."""
        content, age = claim
        if not {"owner", "host", "pid"} <= content.keys():
            return True
        return _pid_gone(str(content["host"]), int(content["pid"])) or age > self.stale_after_s

    def live_claim(self, key: str) -> str | None:
        """The owner of a claim that is not stale, else None."""
        claim = self._read_claim(key)
        if claim is None or self._is_stale(claim):
            return None
        return str(claim[0].get("owner", "?"))

    def try_claim(self, key: str, owner: str) -> bool:
        """Claim the unit for `owner`: True if it is now theirs (new, already theirs, or taken over when stale)."""
        for _ in range(3):
            tmp = temp_path(self._claim_path(key))
            tmp.write_text(json.dumps(_claim_content(owner)))
            try:
                os.link(tmp, self._claim_path(key))  # atomic, fails when a claim exists (O_EXCL semantics)
            except FileExistsError:
                claim = self._read_claim(key)
                if claim is None:
                    continue  # released meanwhile
                if claim[0].get("owner") == owner:
                    os.replace(tmp, self._claim_path(key))  # a requeued job: new pid
                    return True
                tmp.unlink()
                if not self._is_stale(claim) or not self._break_claim(key, claim[0]):
                    return False
                continue
            tmp.unlink()
            return True
        return False

    def _break_claim(self, key: str, seen: dict[str, Any]) -> bool:
        """Remove the claim judged stale (content `seen`); False when another runner replaced it meanwhile."""
        tombstone = self._claim_path(key).with_name(f".claim-broken-{uuid.uuid4().hex}")
        try:
            os.rename(self._claim_path(key), tombstone)
        except FileNotFoundError:
            return True
        try:
            moved = json.loads(tombstone.read_text())
        except json.JSONDecodeError:
            moved = {}
        moved = moved if isinstance(moved, dict) else {}
        if moved != seen:  # we moved a fresh claim: put it back unless someone claimed meanwhile
            try:
                os.link(tombstone, self._claim_path(key))
            except FileExistsError:
                pass
            tombstone.unlink()
            return False
        tombstone.unlink()
        self.log_event(key, "claim broken", previous_owner=seen.get("owner"))
        return True

    def release(self, key: str, owner: str | None) -> None:
        """Drop the claim if `owner` holds it; None drops anyone's (when the scheduler says its job is gone)."""
        claim = self._read_claim(key)
        if claim is not None and owner in (None, claim[0].get("owner")):
            self._claim_path(key).unlink(missing_ok=True)

    @contextmanager
    def heartbeat(self, key: str) -> Iterator[None]:
        """Touch the claim every `heartbeat_s` while the body runs, so other runners see it is alive."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.heartbeat_s):
                try:
                    os.utime(self._claim_path(key))
                except FileNotFoundError:
                    return

        thread = threading.Thread(target=beat, name=f"heartbeat-{key}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
