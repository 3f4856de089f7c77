"""Evaluate a GenEval image folder: one result row per image, then the reference tool's summary.

Rows have the reference `results.jsonl` fields (filename, tag, prompt, correct, reason, metadata as a JSON
string, details = kept boxes [x1, y1, x2, y2, score] per class), so its `summary_scores.py` reads our
files and we read its. Rows are appended as each image finishes; running the same command again skips
the images already in the file, so an interrupted evaluation resumes where it stopped.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from harness.geneval.layout import read_layout
from harness.geneval.metadata import PromptSpec
from harness.geneval.rules import DEFAULT_OPTIONS, GenEvalOptions, judge, keep_detections
from harness.geneval.shape_agnostic import judge_shape_agnostic
from harness.geneval.shape_read import judge_shape_read, read_class
from miro.detection import ColorClassifier, Detector
from miro.errors import MiroError
from miro.files import write_text_atomic


@dataclass(frozen=True)
class GenEvalSummary:
    """The numbers `summary_scores.py` prints. `overall` is the unweighted mean of the task scores."""

    n_images: int
    n_prompts: int
    correct_images: float  # fraction of images judged correct
    correct_prompts: float  # fraction of prompts with at least one correct image
    task_scores: dict[str, float]  # tag -> mean of `correct` over its images, in order of first appearance
    overall: float


def load_image(path: str | Path) -> np.ndarray:
    """RGB uint8 (H, W, 3), EXIF orientation applied as the reference does."""
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def evaluate_image(
    filename: str,
    image: np.ndarray,
    spec: PromptSpec,
    detector: Detector,
    colors: ColorClassifier | None,
    options: GenEvalOptions = DEFAULT_OPTIONS,
) -> dict[str, Any]:
    """Detect, filter and judge one image; returns its result row."""
    kept = keep_detections(detector.detect(image), spec.tag, options)
    verdict = judge(image, kept, spec, colors, options.position_threshold)
    details = {cls: [[*map(float, d.box), float(d.score)] for d in found] for cls, found in kept.items()}
    read = read_class(kept, spec)
    return {
        "filename": filename,
        "tag": spec.tag,
        "prompt": spec.prompt,
        "correct": verdict.correct,
        "reason": verdict.reason,
        "metadata": spec.source,
        "details": json.dumps(details),
        "correct_shape_agnostic": judge_shape_agnostic(image, kept, spec, colors, options.position_threshold),
        "shape_read": judge_shape_read(kept, spec),
        "read_class": read,  # with "prompted_class", the report's confusion table (one-class prompts only)
        "prompted_class": spec.include[0].cls if read is not None else None,
    }


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Result rows from a JSONL file. A torn last line (a run killed mid-write) is dropped; a bad
    line elsewhere means the file is not a results file, which is an error."""
    lines = Path(path).read_text().splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise MiroError(f"{path}:{number}: not a JSON row; delete the file to re-evaluate") from None
    return rows


def _image_key(filename: str | Path) -> tuple[str, ...]:
    """<index>/samples/<n>.png: names an image whether the folder was given as a relative or absolute path."""
    return Path(filename).parts[-3:]


def evaluate_folder(
    folder: str | Path,
    out: str | Path,
    detector: Detector,
    colors: ColorClassifier | None,
    options: GenEvalOptions = DEFAULT_OPTIONS,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Evaluate every image of a GenEval folder into `out` (JSONL), resuming from rows already there.

    Rows written under other detector settings are reused as they are: delete `out` after changing them.
    """
    out = Path(out)
    rows = read_results(out) if out.is_file() else []
    done = {_image_key(row["filename"]) for row in rows}
    todo = [(str(path), prompt.spec) for prompt in read_layout(folder) for path in prompt.images
            if _image_key(path) not in done]
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, "".join(json.dumps(row) + "\n" for row in rows))  # drop a torn last line, keep the good rows
    with open(out, "a") as fp:
        for filename, spec in tqdm(todo, desc="GenEval", disable=not progress):
            row = evaluate_image(filename, load_image(filename), spec, detector, colors, options)
            fp.write(json.dumps(row) + "\n")
            fp.flush()
            rows.append(row)
    return rows


def summarize(rows: Iterable[Mapping[str, Any]]) -> GenEvalSummary:
    """Per-task means, their unweighted mean, % correct images and % prompts with a correct image.

    Prompts are grouped by their metadata string, as the reference does.
    """
    rows = list(rows)
    if not rows:
        raise MiroError("no GenEval result rows to summarize; evaluate a folder with images first")
    by_task: dict[str, list[bool]] = {}
    by_prompt: dict[str, bool] = {}
    for row in rows:
        by_task.setdefault(row["tag"], []).append(bool(row["correct"]))
        by_prompt[row["metadata"]] = by_prompt.get(row["metadata"], False) or bool(row["correct"])
    task_scores = {tag: float(np.mean(v)) for tag, v in by_task.items()}
    return GenEvalSummary(
        n_images=len(rows),
        n_prompts=len(by_prompt),
        correct_images=float(np.mean([bool(row["correct"]) for row in rows])),
        correct_prompts=float(np.mean(list(by_prompt.values()))),
        task_scores=task_scores,
        overall=float(np.mean(list(task_scores.values()))),
    )
