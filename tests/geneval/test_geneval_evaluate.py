"""Evaluating a tiny GenEval folder with a fake detector: layout, rows, resume and the summary numbers."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from harness.geneval.evaluate import evaluate_folder, read_results, summarize
from harness.geneval.layout import read_layout, write_prompt_folder
from miro.detection import ColorClassifier, Detection, Detector
from miro.errors import MiroError

# what the fake detector sees, keyed by the red channel of pixel (0, 0)
SCENES = {
    0: {},
    1: {"bench": [Detection("bench", (2, 2, 12, 12), 0.8)]},
    2: {"clock": [Detection("clock", (0, 0, 5, 5), 0.95), Detection("clock", (8, 0, 13, 5), 0.97),
                  Detection("clock", (0, 8, 5, 13), 0.5)]},
    3: {"car": [Detection("car", (1, 1, 9, 9), 0.9)]},
}


class SceneDetector(Detector):
    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        return SCENES[int(image[0, 0, 0])]


class GreenMeansRed(ColorClassifier):
    """Calls the object red when pixel (0, 0) has green 1, blue otherwise."""

    def classify(self, image, detection, colors):
        return "red" if image[0, 0, 1] == 1 else "blue"


def picture(scene: int, green: int = 0) -> np.ndarray:
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    image[0, 0] = (scene, green, 0)
    return image


@pytest.fixture
def folder(tmp_path, make_spec):
    root = tmp_path / "samples"
    bench = make_spec("single_object", [{"class": "bench", "count": 1}], prompt="a photo of a bench")
    cow = make_spec("single_object", [{"class": "cow", "count": 1}], prompt="a photo of a cow")
    clocks = make_spec("counting", [{"class": "clock", "count": 2}], [{"class": "clock", "count": 3}],
                       prompt="a photo of two clocks")
    car = make_spec("colors", [{"class": "car", "count": 1, "color": "red"}], prompt="a photo of a red car")
    write_prompt_folder(root, 0, bench, [picture(1), picture(0)])  # right, wrong
    write_prompt_folder(root, 1, cow, [picture(1), picture(0)])  # wrong, wrong
    write_prompt_folder(root, 2, clocks, [picture(2), picture(2)])  # right (third clock is below 0.9), right
    write_prompt_folder(root, 12, car, [picture(3, green=0), picture(3, green=1)])  # blue: wrong, red: right
    # things the reference skips
    Image.fromarray(picture(1)).save(root / "00000" / "samples" / "0002.jpg")
    (root / "00000" / "samples" / "grid.png").write_bytes(b"")
    (root / "notes").mkdir()
    return root


def test_layout_reads_digit_folders_and_numbered_pngs(folder):
    prompts = read_layout(folder)
    assert [p.index for p in prompts] == [0, 1, 2, 12]
    assert [p.name for p in prompts[0].images] == ["0000.png", "0001.png"]
    assert prompts[3].spec.prompt == "a photo of a red car"
    assert (folder / "00012" / "metadata.jsonl").is_file()


def test_rows_and_summary(folder, tmp_path):
    rows = evaluate_folder(folder, tmp_path / "results.jsonl", SceneDetector(), GreenMeansRed(), progress=False)
    assert [r["correct"] for r in rows] == [True, False, False, False, True, True, False, True]
    first = rows[0]
    assert set(first) == {"filename", "tag", "prompt", "correct", "reason", "metadata", "details", "correct_shape_agnostic", "shape_read",
                          "read_class", "prompted_class"}
    assert first["shape_read"] is True and first["read_class"] == first["prompted_class"] == "bench"  # its one detection
    assert first["filename"].endswith("00000/samples/0000.png")
    assert json.loads(first["metadata"])["include"] == [{"class": "bench", "count": 1}]
    assert json.loads(first["details"]) == {"bench": [[2.0, 2.0, 12.0, 12.0, 0.8]]}
    assert json.loads(rows[4]["details"]) == {"clock": [[8.0, 0.0, 13.0, 5.0, 0.97], [0.0, 0.0, 5.0, 5.0, 0.95]]}
    assert rows[6]["reason"] == "expected red car>=1, found 0 red; and 1 blue"
    assert read_results(tmp_path / "results.jsonl") == rows

    summary = summarize(rows)
    assert summary.task_scores == {"single_object": 0.25, "counting": 1.0, "colors": 0.5}
    assert summary.overall == pytest.approx((0.25 + 1.0 + 0.5) / 3)  # not the image mean 0.5
    assert summary.correct_images == 0.5
    assert summary.correct_prompts == 0.75
    assert (summary.n_images, summary.n_prompts) == (8, 4)


def test_resume_skips_finished_images_and_drops_a_torn_line(folder, tmp_path, monkeypatch):
    out = tmp_path / "results.jsonl"
    first = evaluate_folder(folder, out, SceneDetector(), GreenMeansRed(), progress=False)
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:5]) + "\n" + lines[5][:20])  # killed while writing row 6
    detector = SceneDetector()
    again = evaluate_folder(folder, out, detector, GreenMeansRed(), progress=False)
    assert detector.calls == 3
    assert again == first and read_results(out) == first
    relative = folder.relative_to(tmp_path)  # the same folder spelled differently is still finished
    monkeypatch.chdir(tmp_path)
    assert evaluate_folder(relative, out, detector, GreenMeansRed(), progress=False) == first
    assert detector.calls == 3


def test_a_broken_results_file_is_refused(folder, tmp_path):
    out = tmp_path / "results.jsonl"
    out.write_text("not json\n{}\n")
    with pytest.raises(MiroError, match="delete the file"):
        evaluate_folder(folder, out, SceneDetector(), GreenMeansRed(), progress=False)
    with pytest.raises(MiroError, match="no GenEval result rows"):
        summarize([])
