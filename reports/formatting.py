"""How numbers read in the report: one place, so tables, verdicts and figure notes agree."""
from __future__ import annotations

import math


def number(value: float | None) -> str:
    """About three significant digits with a true minus sign; an en dash for a missing value."""
    if value is None or math.isnan(value):
        return "–"
    digits = 1 if abs(value) >= 100 else 2 if abs(value) >= 10 else 3
    return f"{value:.{digits}f}".replace("-", "−")


def signed(value: float) -> str:
    """A difference with its sign (a true minus sign, not a hyphen)."""
    return ("+" if value >= 0 else "−") + number(abs(value))


def interval(low: float | None, high: float | None) -> str:
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return ""
    return f"[{number(low)}, {number(high)}]"


def speedup(value: float | None, low: float | None, high: float | None, at_first_step: bool,
            baseline_flat: bool = False) -> str:
    """'3.0× [2.1, 3.0]', '≥' when already reached at the first checkpoint, 'not reached' for None (also for
    an interval bound whose share of bootstrap resamples never reached the target), 'not measurable' when the
    baseline itself started at its final value."""
    def bound(b: float | None) -> str:
        return "not reached" if b is None or math.isnan(b) else number(b)

    if baseline_flat:
        return "not measurable (baseline flat)"
    if value is None or math.isnan(value):
        return "not reached"
    return f"{'≥' if at_first_step else ''}{value:.1f}× [{bound(low)}, {bound(high)}]"


def p_value(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def duration(seconds: float) -> str:
    """1 h 02 min, 3 min 30 s or 45 s."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
