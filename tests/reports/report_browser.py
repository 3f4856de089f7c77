"""Open a report in headless Chromium: did every image decode, is the main table there, and a screenshot.

The report's own script writes data-images-total / data-images-broken on <body> once the page has
loaded; --dump-dom with a virtual time budget returns the DOM after that. Used by the browser test, and
as a script on any report:  python tests/reports/report_browser.py <report.html> [<screenshot.png>]
"""
from __future__ import annotations

import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from reports.screenshot import chromium, run_chromium, screenshot


@dataclass(frozen=True)
class PageCheck:
    images: int
    broken: int
    arm_rows: list[str]


def check_page(binary: str, report: Path) -> PageCheck:
    """Load the report, let its load handler run, and read what it recorded."""
    dom = run_chromium(binary, "--virtual-time-budget=5000", "--dump-dom", report.resolve().as_uri())
    body = re.search(r"<body[^>]*>", dom)
    if body is None:
        raise RuntimeError(f"Chromium returned no <body> for {report}")
    attributes = dict(re.findall(r'data-images-(total|broken)="(\d+)"', body.group(0)))
    if len(attributes) != 2:
        raise RuntimeError("the report's load handler did not run (no data-images-* on <body>)")
    return PageCheck(int(attributes["total"]), int(attributes["broken"]), re.findall(r'<tr data-arm="([^"]+)"', dom))


SORT_PROBE = """<script>
const header = document.querySelector('#main-table th[data-col="1"]');
header.click();
const values = Array.from(document.querySelectorAll('#main-table tbody.arms tr')).map(r => r.cells[1].dataset.value || '');
document.body.setAttribute('data-sorted', values.join(' '));
</script></body>"""


def sorted_first_column(binary: str, report: Path) -> list[float | None]:
    """Click the main table's first metric header in a copy of the report; the row values in their new order."""
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe.html"
        probe.write_text(report.read_text(encoding="utf-8").replace("</body>", SORT_PROBE), encoding="utf-8")
        dom = run_chromium(binary, "--dump-dom", probe.as_uri())
    found = re.search(r'data-sorted="([^"]*)"', dom)
    if found is None:
        raise RuntimeError("the sort probe did not run")
    return [float(v) if v else None for v in found.group(1).split(" ")]


if __name__ == "__main__":
    binary = chromium()
    if binary is None:
        sys.exit("chromium is not installed: apt-get install -y chromium")
    page = Path(sys.argv[1])
    result = check_page(binary, page)
    print(f"{result.images} images, {result.broken} broken, main table rows: {', '.join(result.arm_rows)}")
    if len(sys.argv) > 2:
        print(f"screenshot: {screenshot(page, Path(sys.argv[2]))}")
    sys.exit(1 if result.broken or not result.arm_rows else 0)
