"""Read back a finished evaluation's files (images.jsonl, summary.json), refusing damaged ones in one line.

A results reader must never turn a truncated line, garbage bytes or a NaN/inf metric into a number in a
report: each problem is a MiroError naming the file and the fix, and the caller decides what to leave out.
JSON's NaN/Infinity tokens are refused outright (our writers emit null for a missing value).
"""
from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from miro.errors import MiroError, corrupt_file_error

RECOMPUTE = "rerun the sweep with --retry to recompute the unit"


def non_finite(metrics: Mapping[str, Any], prefix: str = "") -> tuple[str, float] | None:
    """The first metric field (e.g. "pickscore.value") holding NaN or ±inf, with its value; None when all are finite."""
    for name, value in metrics.items():
        where = f"{prefix}{name}"
        if isinstance(value, Mapping):
            found = non_finite(value, f"{where}.")
            if found:
                return found
        elif isinstance(value, float) and not math.isfinite(value):
            return where, value
    return None


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a finite number")


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_refuse_constant)


def _text(path: Path) -> str:
    if not path.is_file():
        raise MiroError(f"{path} is missing; {RECOMPUTE}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise corrupt_file_error(path, error, RECOMPUTE) from None


def read_summary(path: Path) -> dict[str, Any]:
    """summary.json as a dict whose metrics are all finite numbers (or null)."""
    try:
        summary = _loads(_text(path))
    except ValueError as error:  # JSONDecodeError is a ValueError
        raise corrupt_file_error(path, error, RECOMPUTE) from None
    if not isinstance(summary, dict) or not isinstance(summary.get("metrics"), dict):
        raise corrupt_file_error(path, "no metrics object", RECOMPUTE)
    found = non_finite(summary["metrics"])
    if found:
        raise corrupt_file_error(path, f"metric {found[0]} is {found[1]}, not a finite number", RECOMPUTE)
    return summary


def read_rows(path: Path) -> pd.DataFrame:
    """images.jsonl as a table; every line must be one JSON object, and there must be at least one."""
    text = _text(path)
    lines = [line for line in text.splitlines() if line.strip()]
    for number, line in enumerate(lines, 1):
        try:
            row = _loads(line)
        except ValueError as error:
            raise corrupt_file_error(path, f"line {number}: {error}", RECOMPUTE) from None
        if not isinstance(row, dict):
            raise corrupt_file_error(path, f"line {number} is not a JSON object", RECOMPUTE)
    if not lines:
        raise corrupt_file_error(path, "no rows", RECOMPUTE)
    return pd.read_json(io.StringIO(text), lines=True)
