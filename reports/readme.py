"""The docs build: the README's table of results and the report screenshot, from a finished sweep's stored results.

    python -m reports.readme runs/sweeps/default                       # print the table
    python -m reports.readme runs/sweeps/default --readme README.md --screenshot docs/report.png

The table is the report's main table (`<sweep>/report_tables/main_table.csv`, written with the report) cut to the
columns a newcomer reads first; with --readme it replaces what lies between the README's two RESULTS markers, so
the README shows the last run's numbers and nothing older. `nox -s docs -- runs/sweeps/default` runs the second line.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from miro.errors import CommandParser, MiroError, one_line_errors
from reports import formatting

START, END = "<!-- RESULTS: written by python -m reports.readme; do not edit by hand -->", "<!-- /RESULTS -->"
# (column of the main table, heading, with its interval)
COLUMNS = (("geneval", "GenEval", True), ("geneval_shape_agnostic", "shape-agnostic", False),
           ("geneval_shape_read", "shape read (chance 1/3)", True), ("shapes_quality", "quality", False),
           ("shapes_alignment", "alignment", False), ("shapes_size", "size", False),
           ("shapes_cleanliness", "cleanliness (held out)", False))


def main_table(sweep: Path) -> pd.DataFrame:
    path = sweep / "report_tables" / "main_table.csv"
    if not path.is_file():
        raise MiroError(f"{path} does not exist: run the sweep to its end (or rebuild its report: python -m reports {sweep})")
    return pd.read_csv(path)


def cell(row: pd.Series, column: str, with_interval: bool) -> str:
    value, interval = row[column], row.get(f"{column} interval")
    if pd.isna(value):
        return "–"
    text = formatting.number(float(value))
    return f"{text} {interval}" if with_interval and isinstance(interval, str) and interval else text


def markdown_table(sweep: Path) -> str:
    """One row per arm at its last evaluated step: the columns of COLUMNS the sweep has."""
    table = main_table(sweep)
    shown = [(c, heading, wide) for c, heading, wide in COLUMNS if c in table.columns]
    if not shown:
        raise MiroError(f"{sweep}: its main table has none of {', '.join(c for c, _, _ in COLUMNS)}; is it a shapes-world sweep?")
    lines = ["| arm | " + " | ".join(heading for _, heading, _ in shown) + " |", "|---" * (len(shown) + 1) + "|"]
    for _, row in table.iterrows():
        lines.append(f"| {row['arm']} | " + " | ".join(cell(row, c, wide) for c, _, wide in shown) + " |")
    return "\n".join(lines)


def replace_results(readme: Path, table: str) -> None:
    """Write `table` between the README's RESULTS markers (one-line error when they are missing)."""
    text = readme.read_text(encoding="utf-8")
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise MiroError(f"{readme} needs the two lines {START} and {END} (once each, in that order) around its results table")
    head, rest = text.split(START)
    readme.write_text(f"{head}{START}\n{table}\n{END}{rest.split(END, 1)[1]}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="python -m reports.readme", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", help="a finished sweep's folder (holds report.html and report_tables/)")
    parser.add_argument("--readme", help="write the table into this README between its RESULTS markers")
    parser.add_argument("--screenshot", help="write a PNG of the report's first screen here (needs chromium)")
    args = parser.parse_args(argv)
    with one_line_errors():
        sweep = Path(args.sweep_dir)
        table = markdown_table(sweep)
        if args.readme:
            replace_results(Path(args.readme), table)
        if args.screenshot:
            from reports.screenshot import screenshot

            screenshot(sweep / "report.html", Path(args.screenshot))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
