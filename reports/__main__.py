"""Command line: `python -m reports <sweep dir> [--out report.html]` rebuilds a sweep's report from its
stored results (never retrains or rescores); `nox -s report -- <sweep dir>` runs it."""
from __future__ import annotations

import sys

from miro.errors import RESUME, CommandParser, one_line_errors
from reports.build import build_report


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="python -m reports", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", help="the folder a sweep wrote (holds sweep.json and results/)")
    parser.add_argument("--out", help="HTML file to write (default: <sweep_dir>/report.html)")
    args = parser.parse_args(argv)
    with one_line_errors(on_interrupt=RESUME):
        built = build_report(args.sweep_dir, args.out)
    if built.kept:
        print(f"kept {built.kept}: it covers more than these results ({built.missing[0]}); wrote this rebuild beside it")
    print(f"wrote {built.html} and {built.tables}/ in {built.seconds:.1f} s")
    for note in built.missing:
        print(f"missing: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
