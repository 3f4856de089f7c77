"""Shape-agnostic GenEval: colour, count and position judged by GenEval's rules with classes ignored."""
from __future__ import annotations

from test_geneval_rules import IMAGE, ColorsByBox, det

from harness.geneval.shape_agnostic import judge_shape_agnostic


def test_wrong_shapes_in_the_right_colours_and_places_pass(make_spec):
    spec = make_spec("position", [{"class": "square", "count": 1, "color": "blue"},
                                  {"class": "circle", "count": 1, "color": "red", "position": ["left of", 0]}])
    left, right = det("triangle", (0, 0, 10, 10)), det("triangle", (30, 0, 40, 10))
    colors = ColorsByBox({left.box: "red", right.box: "blue"})
    assert judge_shape_agnostic(IMAGE, {"triangle": [left, right]}, spec, colors)
    swapped = ColorsByBox({left.box: "blue", right.box: "red"})
    assert not judge_shape_agnostic(IMAGE, {"triangle": [left, right]}, spec, swapped)


def test_counting_counts_every_object_and_two_objects_need_two(make_spec):
    three = make_spec("counting", [{"class": "circle", "count": 3}], exclude=[{"class": "circle", "count": 4}])
    objects = [det("square", (i * 12, 0, i * 12 + 10, 10)) for i in range(4)]
    assert judge_shape_agnostic(IMAGE, {"square": objects[:2], "circle": objects[2:3]}, three, None)
    assert not judge_shape_agnostic(IMAGE, {"square": objects}, three, None), "four objects are not three"
    assert not judge_shape_agnostic(IMAGE, {"square": objects[:2]}, three, None)
    pair = make_spec("two_object", [{"class": "circle", "count": 1}, {"class": "square", "count": 1}])
    assert not judge_shape_agnostic(IMAGE, {"circle": objects[:1]}, pair, None), "one object cannot be both"
    assert judge_shape_agnostic(IMAGE, {"circle": objects[:2]}, pair, None)
