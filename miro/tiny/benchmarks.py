"""Tiny stand-ins for GenEval's metadata and class names and for PartiPrompts, in their real file formats.

They let the tiny weights file name every benchmark file a real study reads, so an example runs from a fresh
clone without fetching anything; their prompts speak of the shapes world's objects, which the tiny detector
knows as its classes. They are not the benchmarks: results on them mean nothing. `python -m miro weights fetch`
gets the real files; `weights tiny --benchmarks DIR` names real ones instead.
"""
from __future__ import annotations

import json
from pathlib import Path

CLASSES = ("circle", "square", "triangle", "diamond")
# two prompts per GenEval task, in the reference metadata's JSON form (tag, include, optional exclude, prompt); written
# one of each task, then the second of each, so a few prompts taken across tasks spread over generation shards
PAIRS = (
    {"tag": "single_object", "include": [{"class": "circle", "count": 1}], "prompt": "a photo of a circle"},
    {"tag": "single_object", "include": [{"class": "triangle", "count": 1}], "prompt": "a photo of a triangle"},
    {"tag": "two_object", "include": [{"class": "circle", "count": 1}, {"class": "square", "count": 1}],
     "prompt": "a photo of a circle and a square"},
    {"tag": "two_object", "include": [{"class": "triangle", "count": 1}, {"class": "diamond", "count": 1}],
     "prompt": "a photo of a triangle and a diamond"},
    {"tag": "counting", "include": [{"class": "square", "count": 2}], "exclude": [{"class": "square", "count": 3}],
     "prompt": "a photo of two squares"},
    {"tag": "counting", "include": [{"class": "circle", "count": 3}], "exclude": [{"class": "circle", "count": 4}],
     "prompt": "a photo of three circles"},
    {"tag": "colors", "include": [{"class": "square", "count": 1, "color": "blue"}], "prompt": "a photo of a blue square"},
    {"tag": "colors", "include": [{"class": "circle", "count": 1, "color": "red"}], "prompt": "a photo of a red circle"},
    {"tag": "position", "include": [{"class": "circle", "count": 1}, {"class": "triangle", "count": 1, "position": ["right of", 0]}],
     "prompt": "a photo of a triangle right of a circle"},
    {"tag": "position", "include": [{"class": "square", "count": 1}, {"class": "circle", "count": 1, "position": ["above", 0]}],
     "prompt": "a photo of a circle above a square"},
    {"tag": "color_attr", "include": [{"class": "circle", "count": 1, "color": "red"}, {"class": "square", "count": 1, "color": "green"}],
     "prompt": "a photo of a red circle and a green square"},
    {"tag": "color_attr", "include": [{"class": "triangle", "count": 1, "color": "yellow"}, {"class": "diamond", "count": 1, "color": "blue"}],
     "prompt": "a photo of a yellow triangle and a blue diamond"},
)
GENEVAL = PAIRS[0::2] + PAIRS[1::2]
PARTI_HEADER = ("Prompt", "Category", "Challenge", "Note")
_COLORS = ("red", "green", "blue", "yellow", "orange")


def parti_rows() -> list[tuple[str, str, str, str]]:
    """20 rows in two categories (PartiPrompts' columns): 10 single shapes, 10 pairs."""
    rows = [(f"a {color} {shape}", "Shapes", "Colors", "") for color in _COLORS for shape in CLASSES[:2]]
    rows += [(f"a {color} {first} and a {second}", "Arrangements", "Spatial", "")
             for color in _COLORS for first, second in (CLASSES[:2], CLASSES[2:])]
    return rows


def write_benchmarks(folder: Path) -> dict[str, Path]:
    """geneval/evaluation_metadata.jsonl, geneval/object_names.txt and partiprompts/PartiPrompts.tsv under `folder`
    (the layout `weights fetch` writes the real files in); returns their paths by weights-file key."""
    geneval, parti = folder / "geneval", folder / "partiprompts"
    geneval.mkdir(parents=True, exist_ok=True)
    parti.mkdir(parents=True, exist_ok=True)
    (geneval / "evaluation_metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in GENEVAL))
    (geneval / "object_names.txt").write_text("\n".join(CLASSES) + "\n")
    (parti / "PartiPrompts.tsv").write_text("\n".join("\t".join(row) for row in [PARTI_HEADER, *parti_rows()]) + "\n")
    return {"geneval.metadata": geneval / "evaluation_metadata.jsonl", "geneval.class_names": geneval / "object_names.txt",
            "benchmarks.parti": parti / "PartiPrompts.tsv"}


def existing_benchmarks(folder: Path) -> dict[str, Path]:
    """The real benchmark files in `folder` (laid out as `weights fetch` writes them, or as the project's shared
    benchmarks are), by weights-file key; a missing one is a MiroError naming it and the command that fetches it."""
    from miro.errors import MiroError

    found = {"geneval.metadata": folder / "geneval" / "evaluation_metadata.jsonl",
             "geneval.class_names": folder / "geneval" / "object_names.txt",
             "benchmarks.parti": folder / "partiprompts" / "PartiPrompts.tsv"}
    for key, path in found.items():
        if not path.is_file():
            raise MiroError(f"--benchmarks {folder}: {path} is missing ({key}); fetch the benchmarks with python -m miro weights fetch OUT "
                            "and pass OUT/benchmarks, or leave --benchmarks out for tiny stand-ins")
    return found
