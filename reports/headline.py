"""What a sweep found, in a few terminal lines: printed when a sweep ends and by `--status` on a finished one.

Read from the claims table the report exported (reports.claims.claims_frame, the same Claim objects as the
report's claims section), so the terminal and the report cannot disagree.
"""
from __future__ import annotations

import csv
from pathlib import Path

from reports.build import REPORT, tables_folder

EVIDENCE_LINES = 4  # per claim; the rest is in the report


def headline(sweep_dir: str | Path) -> str:
    """Per claim its verdict and statement, then its numbers (effect, 95% interval, Holm p) or why it was not
    testable; "" when the sweep folder holds no report yet."""
    path = tables_folder(Path(sweep_dir) / REPORT) / "claims.csv"
    if not path.is_file():
        return ""
    with path.open(newline="", encoding="utf-8") as table:
        rows = list(csv.DictReader(table))
    width = max((len(row["status"]) for row in rows), default=0)
    lines = ["claims of the paper (as in the report's claims section; 95% intervals, Holm-adjusted p):"]
    for row in rows:
        lines.append(f"  {row['status']:{width}s}  {row['statement']}")
        evidence = [part for part in (row["evidence"] or "").split(" | ") if part]
        shown = evidence[:EVIDENCE_LINES] or [row["reason"]]
        more = f" (and {len(evidence) - len(shown)} more in the report)" if len(evidence) > len(shown) else ""
        lines += [f"  {'':{width}s}    {text}" for text in shown[:-1]] + [f"  {'':{width}s}    {shown[-1]}{more}"]
    return "\n".join(lines)
