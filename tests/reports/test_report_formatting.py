"""Numbers as the report prints them: true minus signs, missing values, speed-ups that were not reached."""
from __future__ import annotations

from reports import formatting


def test_numbers_intervals_and_speedups() -> None:
    assert formatting.number(-0.05) == "−0.050" and formatting.number(123.456) == "123.5" and formatting.number(None) == "–"
    assert formatting.signed(0.07) == "+0.070" and formatting.interval(None, 1.0) == ""
    assert formatting.speedup(3.0, 3.0, 3.0, True) == "≥3.0× [3.000, 3.000]"
    assert formatting.speedup(1.1, None, 1.24, False) == "1.1× [not reached, 1.240]"
    assert formatting.speedup(None, None, None, False) == "not reached"
    assert formatting.p_value(0.0004) == "p < 0.001" and formatting.duration(3725) == "1 h 02 min"
