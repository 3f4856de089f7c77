"""One error type for bad input, and the helper that suggests the name the user probably meant.

Every check in the project raises `MiroError` with a single line that names the problem and the fix,
so a user (or a SLURM log) sees at once what to change.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class MiroError(ValueError):
    """Bad input: a wrong config key or value, an unknown reward, a missing or corrupt file."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean "x"?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def unknown_name_error(kind: str, name: str, choices: Iterable[str]) -> MiroError:
    """The one-line error for a name that is not in a registry or a set of allowed values."""
    allowed = sorted(choices)
    return MiroError(f'unknown {kind} "{name}"{did_you_mean(name, allowed)}; allowed: {", ".join(allowed)}')
