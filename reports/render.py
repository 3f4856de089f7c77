"""HTML rendering: the jinja2 template, tables as display cells, and files embedded as data URIs, so the
report is one file that opens offline in any browser."""
from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from reports import formatting

TEMPLATES = Path(__file__).parent / "templates"


def data_uri(content: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(content).decode("ascii")


def png_uri(path: Path) -> str:
    return data_uri(path.read_bytes(), "image/png")


def csv_uri(frame: pd.DataFrame) -> str:
    return data_uri(frame.to_csv(index=False).encode("utf-8"), "text/csv")


def display(value: Any) -> tuple[str, float | None]:
    """(text shown, numeric sort key or None) of one table value."""
    if isinstance(value, bool):
        return ("yes" if value else "no"), None
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return "–", None
        return (str(value) if isinstance(value, int) else formatting.number(value)), float(value)
    return ("–" if value is None else str(value)), None


def table_view(frame: pd.DataFrame) -> dict[str, Any]:
    """Columns and rows of (text, sort key) cells for the template's frame_table macro."""
    rows = [[display(v.item() if hasattr(v, "item") else v) for v in record] for record in frame.itertuples(index=False)]
    return {"columns": [str(c) for c in frame.columns], "rows": rows}


def render(context: dict[str, Any]) -> str:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return environment.get_template("report.html.j2").render(**context)
