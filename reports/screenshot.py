"""Open a report in headless Chromium: the DOM after its scripts ran, or a screenshot of the page.

Used by the docs build (`python -m reports.readme ... --screenshot docs/report.png`) and by the report's browser
test. Chromium runs with a fresh profile, no sandbox (containers), no network of its own and no GPU.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from miro.errors import MiroError

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def run_chromium(binary: str, *args: str) -> str:
    """Chromium's stdout for `args` (a URL last), in a profile of its own."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                              timeout=120, check=True)
    return done.stdout


def screenshot(report: Path, out: Path, width: int = 1280, height: int = 2000) -> Path:
    """A PNG of the top `height` pixels of `report` at `width`, after its load handler ran."""
    binary = chromium()
    if binary is None:
        raise MiroError("chromium is not installed: apt-get install -y chromium (or skip --screenshot)")
    out.parent.mkdir(parents=True, exist_ok=True)
    run_chromium(binary, f"--screenshot={out.resolve()}", f"--window-size={width},{height}", "--virtual-time-budget=5000",
                 report.resolve().as_uri())
    return out
