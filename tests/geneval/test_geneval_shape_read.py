"""Shape read: on prompts naming one class, is the most confident object that class?"""
from __future__ import annotations

from test_geneval_rules import det

from harness.geneval.shape_read import NOTHING, judge_shape_read, read_class


def test_the_most_confident_object_decides(make_spec):
    spec = make_spec("single_object", [{"class": "square", "count": 1}])
    square, circle = det("square", (0, 0, 10, 10), score=0.6), det("circle", (20, 0, 30, 10), score=0.9)
    assert judge_shape_read({"square": [square]}, spec) is True
    assert judge_shape_read({"square": [square], "circle": [circle]}, spec) is False
    assert read_class({"square": [square], "circle": [circle]}, spec) == "circle"  # what the confusion table counts
    counting = make_spec("counting", [{"class": "circle", "count": 2}], exclude=[{"class": "circle", "count": 3}])
    assert judge_shape_read({"square": [square], "circle": [circle]}, counting) is True


def test_no_verdict_without_an_object_or_with_two_classes(make_spec):
    one_class = make_spec("colors", [{"class": "square", "count": 1, "color": "red"}])
    assert judge_shape_read({}, one_class) is None and read_class({}, one_class) == NOTHING  # counted as drawn nothing
    pair = make_spec("two_object", [{"class": "circle", "count": 1}, {"class": "square", "count": 1}])
    assert judge_shape_read({"circle": [det("circle", (0, 0, 10, 10))]}, pair) is None
    assert read_class({"circle": [det("circle", (0, 0, 10, 10))]}, pair) is None
