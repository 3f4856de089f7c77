"""Shared look of every figure: Okabe-Ito colours (distinguishable with any colour-vision deficiency),
plus a line style and marker per arm so no figure relies on colour alone; SVG embedded as a data URI."""
from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.typing import RcKeyType  # noqa: E402

OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7", "#999999")
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
RC: dict[RcKeyType, Any] = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8, "svg.fonttype": "none",
      "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}
plotting = matplotlib.rc_context(RC)  # decorate every figure function: rc settings apply while it draws
UNITS = {"geneval": "fraction correct", "geneval_shape_agnostic": "fraction correct", "geneval_shape_read": "fraction read as prompted",
         "objects_per_single_object_prompt": "objects per image", "fid": "FID", "kid": "KID"}


@dataclass(frozen=True)
class ArmStyle:
    color: str
    linestyle: str
    marker: str


@dataclass(frozen=True)
class Embedded:
    """A finished figure: an id for the page, a title, a caption that says how to read it, the SVG data URI."""

    key: str
    title: str
    caption: str
    uri: str


def arm_styles(arms: Sequence[str]) -> dict[str, ArmStyle]:
    """Arm i: colour i mod 8, marker i mod 8, line style changing every 8 arms (16 arms stay distinct)."""
    return {a: ArmStyle(OKABE_ITO[i % 8], LINESTYLES[(i // 8) % 4], MARKERS[i % 8]) for i, a in enumerate(arms)}


def axis_label(metric: str, direction: int) -> str:
    """'shapes_quality' over '(score, higher is better)': two short lines that fit beside a small panel."""
    unit = UNITS.get(metric, "score")
    better = {1: ", higher is better", -1: ", lower is better", 0: ""}[direction]
    return f"{metric}\n({unit}{better})"


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def embed(figure: Figure) -> str:
    """The figure as an SVG data URI (an <img> source that needs no file and no network)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg")
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
