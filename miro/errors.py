"""One error type for bad input, the helpers that word it, and the one way a command turns it into a line.

Every check in the project raises `MiroError` with a single line that names the problem and the fix,
so a user (or a SLURM log) sees at once what to change. A command's `main` runs inside `one_line_errors()`,
which prints that line (and the same kind of line for an OS error: a read-only folder, a full disk) on
stderr and exits with status 2 (as argparse does for a bad command line), without a traceback; `CommandParser` does the same for a malformed command line, and
`number()` checks a numeric option's range when the command line is parsed, before any work, so a
`--dry-run` refuses exactly what a real run refuses.
"""
from __future__ import annotations

import argparse
import difflib
import errno
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a command stopped by Ctrl-C
RESUME = "run the same command again to go on (what was finished is kept)"


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


def check_range(name: str, value: float, low: float | None = None, high: float | None = None, *,
                low_open: bool = False) -> None:
    """Refuse a value that is NaN, infinite or outside [low, high] (`low_open`: (low, high]), naming the range."""
    bad = not math.isfinite(value) or (low is not None and (value <= low if low_open else value < low)) \
        or (high is not None and value > high)
    if bad:
        raise MiroError(f"{name} = {value!r} is out of range; allowed: {describe_range(low, high, low_open)}")


def describe_range(low: float | None, high: float | None, low_open: bool = False, integer: bool = False) -> str:
    what = "an integer" if integer else "a finite number"
    if low is not None and high is not None:
        return f"{what} in {'(' if low_open else '['}{low:g}, {high:g}]"
    if low is not None:
        return f"{what} {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{what} <= {high:g}"
    return what


def number(kind: type[int] | type[float] = int, low: float | None = None, high: float | None = None, *,
           low_open: bool = False) -> Callable[[str], float]:
    """An argparse `type=` that parses and range-checks an option (finite; within [low, high])."""
    def parse(text: str) -> float:
        allowed = describe_range(low, high, low_open, integer=kind is int)
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}; allowed: {allowed}") from None
        try:
            check_range("value", value, low, high, low_open=low_open)
        except MiroError:
            raise argparse.ArgumentTypeError(f"{text} is out of range; allowed: {allowed}") from None
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


class CommandParser(argparse.ArgumentParser):
    """argparse with a malformed command line reported on one line (argparse's own prints the usage too)."""

    def error(self, message: str) -> NoReturn:
        fail(f"{self.prog}: {message}; see {self.prog} --help")


_OS_FIXES = {
    errno.ENOSPC: "free disk space (or point the output elsewhere) and run the same command again",
    errno.EDQUOT: "free space within your quota (or point the output elsewhere) and run the same command again",
    errno.EROFS: "the filesystem is read-only: choose a writable output folder",
    errno.EACCES: "check the permissions of the folder, or choose one you can write",
    errno.EPERM: "check the permissions of the folder, or choose one you can write",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a file stands where a folder is expected: check the path",
    errno.EISDIR: "a folder stands where a file is expected: check the path",
}


def os_error_line(error: OSError) -> str:
    """An OS error as one line: the file, what the system said, and what to do (finished work is kept)."""
    where = error.filename if error.filename is not None else "a file"
    fix = _OS_FIXES.get(error.errno or -1, "fix the cause and run the same command again")
    return f"{where}: {error.strerror or error}; {fix} (nothing finished is lost)"


def corrupt_file_error(path: Path | str, problem: object, fix: str) -> MiroError:
    """The one-line error for a file that exists but cannot be read as what it should be."""
    first = str(problem).strip().splitlines()[0] if str(problem).strip() else type(problem).__name__
    return MiroError(f"{path} is corrupt or truncated ({first}); {fix}")


@contextmanager
def one_line_errors(on_interrupt: str = "") -> Iterator[None]:
    """Run a command's body: bad input and OS errors end it with one line on stderr and exit status 2; given
    `on_interrupt` (what to do next), so does Ctrl-C, with the status a shell gives it (130)."""
    try:
        yield
    except MiroError as error:
        fail(str(error))
    except OSError as error:
        fail(os_error_line(error))
    except KeyboardInterrupt:
        if not on_interrupt:
            raise
        fail(f"interrupted (Ctrl-C); {on_interrupt}", EXIT_INTERRUPTED)


def fail(message: str, status: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print `error: <message>` as one line on stderr and exit with `status` (2: bad input)."""
    print("error: " + " ".join(message.split()), file=sys.stderr)
    sys.exit(status)
