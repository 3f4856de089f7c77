"""What a unit reads enters its key by content, not by path (miro.content computes the identities).

The planner names the fields of a unit's inputs that may name a file or folder (a run config's PATH_FIELDS, a
suite's SUITE_PATHS, scorer options); `by_content` replaces each one that names something by `content:<identity>`
in the key, and its path is kept beside the unit (reads.json, `Store.reads`). So a weights file or data shard changed in place gives every unit that reads it,
and through their keys every unit downstream, a new key, while moving the same files elsewhere changes none.

Why a unit will run again: a unit not done whose inputs, read by path and without the code version, equal
those of a finished unit (its lineage) differs from it only in the content it reads or in the code;
`rerun_reasons` names which, for `--status` and `--dry-run`.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.store import Store, canonical_json
from harness.study import flatten
from miro.content import combined_identity
from miro.errors import MiroError

CONTENT = "content:"
CODE = "code"  # the key field holding the code version
# fields of a suite, a tuning or a control sweep that may name a file or folder rather than a built-in set
SUITE_PATHS = ("prompts", "geneval_detector", "geneval_classes", "geneval_colors", "geneval_colors_model", "reference")
PROMPT_PATHS = ("prompts",)


def _get(data: Mapping[str, Any], field: str) -> Any:
    for part in field.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return None
        data = data[part]
    return data


def _set(data: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    head, _, rest = field.partition(".")
    return {**data, head: _set(dict(data[head]), rest, value) if rest else value}


def option_fields(prefix: str, options: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The fields of scorer options (scorer -> keyword options) that may name a file: every text value (a
    factory's text options are paths, architecture names or devices; only a path names something on disk)."""
    return [f"{prefix}.{name}.{key}" for name, values in options.items() for key, value in values.items() if isinstance(value, str)]


class Identities:
    """Content identities of the paths one plan reads, each computed once per plan (and cached across runs in the
    store's `content/` folder). A webdataset brace pattern is identified by the shards it expands to."""

    def __init__(self, store: Store) -> None:
        self.cache = store.root / "content"
        self.known: dict[str, str | None] = {}

    def __call__(self, value: str) -> str | None:
        """The identity of what `value` names, or None when it names no file or folder (a set name, "")."""
        if value not in self.known:
            self.known[value] = self._identify(value)
        return self.known[value]

    def _identify(self, value: str) -> str | None:
        if not value:
            return None
        path = Path(value).expanduser()
        if path.exists():
            return combined_identity([path], self.cache)
        if "{" in value:
            from miro.data.sources import shard_paths

            shards = shard_paths(value)
            if shards and all(p.exists() for p in shards):
                return combined_identity(shards, self.cache)
        return None


def by_content(inputs: Mapping[str, Any], fields: Iterable[str], identify: Callable[[str], str | None]) -> tuple[dict[str, Any], dict[str, str]]:
    """`inputs` with every dotted field that names a file or folder replaced by its content identity, and
    {field: path} of those fields."""
    keyed, reads = dict(inputs), {}
    for field in fields:
        value = _get(keyed, field)
        if isinstance(value, str) and (identity := identify(value)) is not None:
            keyed = _set(keyed, field, CONTENT + identity)
            reads[field] = value
    return keyed, reads


def _lineage(kind: str, inputs: Mapping[str, Any], reads: Mapping[str, str]) -> str:
    """A unit's inputs with each content identity put back as its path and without the code version."""
    flat = {field: value for field, value in flatten(inputs).items() if field != CODE}
    flat.update(reads)
    return hashlib.sha256(canonical_json({"kind": kind, "inputs": flat}).encode()).hexdigest()


def _why(new: Mapping[str, Any], reads: Mapping[str, str], old: Mapping[str, Any], old_reads: Mapping[str, str]) -> str:
    flat_new, flat_old = flatten(new), flatten(old)
    reasons = []
    for field in sorted(set(flat_new) | set(flat_old)):
        if flat_new.get(field) == flat_old.get(field):
            continue
        if field == CODE:
            reasons.append("the code that computes it changed")
        elif field in reads and field not in old_reads:
            reasons.append(f"{reads[field]} is now identified by its content (a unit of an older store)")
        elif field in reads:
            reasons.append(f"{reads[field]} changed")
        else:
            reasons.append(f"{field} changed")
    return "; ".join(reasons)


def rerun_reasons(store: Store, keys: Iterable[str]) -> dict[str, str]:
    """For each of `keys` not done that repeats a finished unit with other contents or code: why it runs again."""
    pending = [key for key in keys if store.state(key) != "done"]
    if not pending:
        return {}
    finished: dict[str, tuple[str, str]] = {}  # lineage -> (updated, key) of the latest finished unit
    for key, status in store.status().items():
        if status.state != "done":
            continue
        try:
            lineage = _lineage(status.kind, store.inputs(key)["inputs"], store.reads(key))
        except (MiroError, KeyError):
            continue  # a damaged record is reported on its own unit
        finished[lineage] = max(finished.get(lineage, ("", "")), (status.updated or "", key))
    reasons = {}
    for key in pending:
        record, reads = store.inputs(key), store.reads(key)
        match = finished.get(_lineage(record["kind"], record["inputs"], reads))
        if match:
            reasons[key] = _why(record["inputs"], reads, store.inputs(match[1])["inputs"], store.reads(match[1]))
    return reasons


def _named_keys(inputs: Mapping[str, Any]) -> set[str]:
    """The text values of a unit's inputs (the keys of the units it reads among them)."""
    found: set[str] = set()
    for value in flatten(inputs).values():
        found.update(v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str))
    return found


def rerun_lines(store: Store, units: Iterable[Any]) -> list[str]:
    """`--status` / `--dry-run` lines: the planned units (harness.units.PlannedUnit) that run again although a unit
    like them finished, why, and how many units that read theirs (directly or not) run again with them."""
    planned = list(units)
    reasons = rerun_reasons(store, [p.unit.key for p in planned])
    grouped: dict[tuple[str, str], int] = {}
    for p in planned:
        if p.unit.key in reasons:
            grouped[(p.unit.kind, reasons[p.unit.key])] = grouped.get((p.unit.kind, reasons[p.unit.key]), 0) + 1
    reading = {p.unit.key: (p.unit.kind, set(p.unit.depends_on) | _named_keys(store.inputs(p.unit.key)["inputs"]))
               for p in planned if p.unit.key not in reasons and store.state(p.unit.key) != "done"}
    again, downstream = set(reasons), dict[str, int]()
    while grown := [key for key, (_, read) in reading.items() if read & again]:
        for key in grown:
            again.add(key)
            kind = reading.pop(key)[0]
            downstream[kind] = downstream.get(kind, 0) + 1
    lines = [f"  {count} {kind} unit(s) run again: {why}" for (kind, why), count in grouped.items()]
    if downstream:
        lines.append(f"  {sum(downstream.values())} unit(s) that read theirs run again with them "
                     f"({', '.join(f'{n} {kind}' for kind, n in downstream.items())})")
    return lines
