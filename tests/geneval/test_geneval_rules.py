"""GenEval's rules on hand-built detections: filtering, geometry and the verdict for every tag."""
from __future__ import annotations

import numpy as np
import pytest

from harness.geneval.rules import GenEvalOptions, iou, judge, keep_detections, relative_position
from miro.detection import ColorClassifier, Detection
from miro.errors import MiroError

IMAGE = np.zeros((64, 64, 3), dtype=np.uint8)


def det(label: str, box=(0, 0, 10, 10), score: float = 0.95) -> Detection:
    return Detection(label, tuple(float(v) for v in box), score)


class ColorsByBox(ColorClassifier):
    """Names colours from a table keyed by box, and records what it was asked."""

    def __init__(self, table: dict[tuple, str]) -> None:
        self.table = table
        self.asked: list[tuple] = []

    def classify(self, image, detection, colors):
        self.asked.append(detection.box)
        assert len(colors) == 10
        return self.table[detection.box]


# relative_position: the checked cases of geneval.md (10 x 10 boxes) and their mirror images
B = (0, 0, 10, 10)


@pytest.mark.parametrize("box_a, expected", [
    ((-20, 0, -10, 10), {"left of"}),  # B 20 px to the right of A
    ((-2, 0, 8, 10), set()),
    ((-3, 0, 7, 10), set()),
    ((-5, 0, 5, 10), {"left of"}),
    ((-100, -100, -90, -90), {"above", "left of"}),
    ((20, 0, 30, 10), {"right of"}),
    ((0, 30, 10, 40), {"below"}),
    ((0, -30, 10, -20), {"above"}),
    ((0, 0, 10, 10), set()),
])
def test_relative_position_checked_cases(box_a, expected):
    assert relative_position(box_a, B) == expected


def test_relative_position_uses_per_axis_sizes():
    # a tall thin A 5 px left of a tall thin B: the x margin is 0.1 * (2 + 2), so it is clearly "left of"
    assert relative_position((0, 0, 2, 100), (5, 0, 7, 100)) == {"left of"}
    # a larger c swallows the 5 px offset of the 10 x 10 case
    assert relative_position((-5, 0, 5, 10), B, c=0.25) == set()


def test_iou_counts_pixels_inclusively():
    assert iou((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(50 / 150)
    assert iou((0, 0, 9, 9), (20, 20, 29, 29)) == 0.0


# filtering
def test_threshold_is_strict_and_counting_uses_its_own():
    found = {"cat": [det("cat", score=0.3), det("cat", score=0.31), det("cat", score=0.9), det("cat", score=0.91)]}
    assert [d.score for d in keep_detections(found, "single_object", GenEvalOptions())["cat"]] == [0.91, 0.9, 0.31]
    assert [d.score for d in keep_detections(found, "counting", GenEvalOptions())["cat"]] == [0.91]
    assert keep_detections({"cat": [det("cat", score=0.2)]}, "colors", GenEvalOptions()) == {}


def test_at_most_16_objects_per_class_keeping_the_most_confident():
    found = {"cup": [det("cup", (i, 0, i + 5, 5), 0.4 + i / 100) for i in range(20)]}
    kept = keep_detections(found, "two_object", GenEvalOptions())["cup"]
    assert len(kept) == 16
    assert kept[0].score == pytest.approx(0.59) and kept[-1].score == pytest.approx(0.44)
    assert len(keep_detections(found, "two_object", GenEvalOptions(max_objects=3))["cup"]) == 3


def test_nms_on_and_off():
    found = {"dog": [det("dog", (0, 0, 9, 9), 0.9), det("dog", (5, 0, 14, 9), 0.8), det("dog", (40, 40, 49, 49), 0.7)]}
    assert len(keep_detections(found, "single_object", GenEvalOptions())["dog"]) == 3  # default 1.0 = off
    assert len(keep_detections(found, "single_object", GenEvalOptions(max_overlap=0.5))["dog"]) == 3  # 1/3 < 0.5
    kept = keep_detections(found, "single_object", GenEvalOptions(max_overlap=0.3))["dog"]
    assert [d.box for d in kept] == [(0, 0, 9, 9), (40, 40, 49, 49)]


@pytest.mark.parametrize("field, value", [("threshold", 1.2), ("max_objects", 0), ("max_overlap", 0.0),
                                          ("position_threshold", -0.1)])
def test_options_are_checked(field, value):
    with pytest.raises(MiroError, match=field):
        GenEvalOptions(**{field: value})


# verdicts, tag by tag
def test_single_and_two_object(make_spec):
    single = make_spec("single_object", [{"class": "bench", "count": 1}])
    assert judge(IMAGE, {"bench": [det("bench")]}, single, None).correct
    verdict = judge(IMAGE, {"cat": [det("cat")]}, single, None)
    assert not verdict.correct and verdict.reason == "expected bench>=1, found 0"
    two = make_spec("two_object", [{"class": "bench", "count": 1}, {"class": "cow", "count": 1}])
    assert judge(IMAGE, {"bench": [det("bench")], "cow": [det("cow")]}, two, None).correct
    assert judge(IMAGE, {"cow": [det("cow")]}, two, None).reason == "expected bench>=1, found 0"


def test_counting_means_exactly_n_above_0_9(make_spec):
    three = make_spec("counting", [{"class": "clock", "count": 3}], [{"class": "clock", "count": 4}])
    options = GenEvalOptions()

    def verdict(scores):
        found = {"clock": [det("clock", (10 * i, 0, 10 * i + 8, 8), s) for i, s in enumerate(scores)]}
        return judge(IMAGE, keep_detections(found, "counting", options), three, None)

    assert verdict([0.99, 0.95, 0.92]).correct
    assert verdict([0.99, 0.95, 0.92, 0.85]).correct  # the fourth is below 0.9, so it does not count
    too_many = verdict([0.99, 0.95, 0.92, 0.91])
    assert not too_many.correct and too_many.reason == "expected clock<4, found 4"
    too_few = verdict([0.99, 0.95, 0.85])
    assert not too_few.correct and too_few.reason == "expected clock>=3, found 2"


def test_colors_judge_only_the_most_confident_objects(make_spec):
    red_car = make_spec("colors", [{"class": "car", "count": 1, "color": "red"}])
    red, blue = det("car", (0, 0, 10, 10), 0.9), det("car", (20, 0, 30, 10), 0.8)
    colors = ColorsByBox({red.box: "red", blue.box: "blue"})
    assert judge(IMAGE, {"car": [red, blue]}, red_car, colors).correct
    assert colors.asked == [red.box]
    verdict = judge(IMAGE, {"car": [blue]}, red_car, colors)
    assert not verdict.correct
    assert verdict.reason == "expected red car>=1, found 0 red; and 1 blue"


def test_a_colour_clause_needs_a_classifier(make_spec):
    red_car = make_spec("colors", [{"class": "car", "count": 1, "color": "red"}])
    with pytest.raises(MiroError, match="ColorClassifier"):
        judge(IMAGE, {"car": [det("car")]}, red_car, None)


def test_color_attr_needs_both_colours(make_spec):
    spec = make_spec("color_attr", [{"class": "wine glass", "count": 1, "color": "purple"},
                                    {"class": "apple", "count": 1, "color": "black"}])
    glass, apple = det("wine glass", (0, 0, 10, 10)), det("apple", (30, 30, 40, 40))
    found = {"wine glass": [glass], "apple": [apple]}
    assert judge(IMAGE, found, spec, ColorsByBox({glass.box: "purple", apple.box: "black"})).correct
    verdict = judge(IMAGE, found, spec, ColorsByBox({glass.box: "purple", apple.box: "red"}))
    assert not verdict.correct and verdict.reason == "expected black apple>=1, found 0 black; and 1 red"


def test_position(make_spec):
    dog_right_of_bear = make_spec("position", [{"class": "teddy bear", "count": 1},
                                               {"class": "dog", "count": 1, "position": ["right of", 0]}])
    bear = det("teddy bear", (0, 0, 10, 10))
    assert judge(IMAGE, {"teddy bear": [bear], "dog": [det("dog", (30, 0, 40, 10))]}, dog_right_of_bear, None).correct
    wrong = judge(IMAGE, {"teddy bear": [bear], "dog": [det("dog", (0, 30, 10, 40))]}, dog_right_of_bear, None)
    assert not wrong.correct and wrong.reason == "expected dog right of target, found below target"
    touching = judge(IMAGE, {"teddy bear": [bear], "dog": [det("dog", (2, 0, 12, 10))]}, dog_right_of_bear, None)
    assert touching.reason == "expected dog right of target, found  target"


def test_position_with_a_failed_anchor(make_spec):
    dog_right_of_bear = make_spec("position", [{"class": "teddy bear", "count": 1},
                                               {"class": "dog", "count": 1, "position": ["right of", 0]}])
    verdict = judge(IMAGE, {"dog": [det("dog", (30, 0, 40, 10))]}, dog_right_of_bear, None)
    assert not verdict.correct
    assert verdict.reason == "expected teddy bear>=1, found 0\nno target for dog to be right of"


def test_an_anchor_that_fails_its_colour_fails_the_position_too(make_spec):
    spec = make_spec("position", [{"class": "teddy bear", "count": 1, "color": "red"},
                                  {"class": "dog", "count": 1, "position": ["right of", 0]}])
    bear, dog = det("teddy bear", (0, 0, 10, 10)), det("dog", (30, 0, 40, 10))
    verdict = judge(IMAGE, {"teddy bear": [bear], "dog": [dog]}, spec, ColorsByBox({bear.box: "brown"}))
    assert verdict.reason.endswith("no target for dog to be right of")
