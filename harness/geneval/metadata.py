"""GenEval's prompt metadata and class names, read from files the user points at.

The files are MIT-licensed data from djghosh13/geneval; the project does not ship them. A user either
passes local paths or calls `download_geneval_files`, which fetches the pinned commit's files and refuses
any whose sha256 differs, so a moved or edited upstream file cannot silently change the benchmark.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from miro.benchmark_files import GENEVAL_FILES, fetch_verified
from miro.errors import MiroError, did_you_mean, unknown_name_error

TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
RELATIONS = ("left of", "right of", "above", "below")

@dataclass(frozen=True)
class Clause:
    """One include/exclude requirement: `count` objects of `cls`, optionally of a colour or placed
    `position[0]` ("left of", ...) relative to the objects matched by include clause `position[1]`."""

    cls: str
    count: int
    color: str | None = None
    position: tuple[str, int] | None = None


@dataclass(frozen=True)
class PromptSpec:
    """One GenEval prompt. `source` is the metadata object as the reference writes it back
    (`json.dumps` of the parsed line), kept verbatim so result rows match the reference tool's."""

    tag: str
    prompt: str
    include: tuple[Clause, ...]
    exclude: tuple[Clause, ...]
    source: str


def _clause(obj: object, where: str, n_before: int, class_names: Sequence[str] | None) -> Clause:
    if not isinstance(obj, dict) or not isinstance(obj.get("class"), str):
        raise MiroError(f'{where}: a clause must be an object with a "class" string, got {obj!r}')
    cls = obj["class"]
    if class_names is not None and cls not in class_names:
        raise MiroError(f'{where}: unknown class "{cls}"{did_you_mean(cls, class_names)}')
    count = obj.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise MiroError(f'{where}: "count" of "{cls}" must be an integer >= 1, got {count!r}')
    color = obj.get("color")
    if color is not None and color not in COLORS:
        raise unknown_name_error(f"colour in {where}", str(color), COLORS)
    position = obj.get("position")
    if position is not None:
        if not (isinstance(position, list) and len(position) == 2 and position[0] in RELATIONS
                and isinstance(position[1], int) and 0 <= position[1] < n_before):
            raise MiroError(
                f'{where}: "position" must be [relation, index of an earlier include clause] with relation '
                f"in {list(RELATIONS)}, got {position!r}"
            )
        position = (position[0], position[1])
    return Clause(cls, count, color, position)


def parse_prompt(obj: object, where: str = "metadata", class_names: Sequence[str] | None = None) -> PromptSpec:
    """Check and convert one metadata object; `class_names`, when given, must contain every class."""
    if not isinstance(obj, dict):
        raise MiroError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    tag = obj.get("tag")
    if tag not in TAGS:
        raise unknown_name_error(f"tag in {where}", str(tag), TAGS)
    if not isinstance(obj.get("prompt"), str):
        raise MiroError(f'{where}: "prompt" must be a string')
    include = obj.get("include")
    if not isinstance(include, list) or not include:
        raise MiroError(f'{where}: "include" must be a non-empty list of clauses')
    exclude = obj.get("exclude", [])
    if not isinstance(exclude, list):
        raise MiroError(f'{where}: "exclude" must be a list of clauses')
    return PromptSpec(
        tag=tag,
        prompt=obj["prompt"],
        include=tuple(_clause(c, where, i, class_names) for i, c in enumerate(include)),
        exclude=tuple(_clause(c, where, 0, class_names) for c in exclude),
        source=json.dumps(obj),
    )


def read_metadata(path: str | Path, class_names: Sequence[str] | None = None) -> list[PromptSpec]:
    """Read GenEval's `evaluation_metadata.jsonl` (one prompt a line; line i is prompt index i)."""
    path = Path(path)
    if not path.is_file():
        raise MiroError(f"GenEval metadata not found at {path}; pass the path to evaluation_metadata.jsonl "
                        "or call download_geneval_files()")
    specs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise MiroError(f"{path}:{number}: not valid JSON ({err.msg})") from None
        specs.append(parse_prompt(obj, f"{path}:{number}", class_names))
    return specs


def read_class_names(path: str | Path) -> list[str]:
    """Read `object_names.txt`: the detector's class names, one a line, in label-id order."""
    path = Path(path)
    if not path.is_file():
        raise MiroError(f"class names not found at {path}; pass the path to GenEval's object_names.txt")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(set(names)) != len(names) or not names:
        raise MiroError(f"{path}: class names must be non-empty and unique")
    return names


def download_geneval_files(dest_dir: str | Path, allow_download: bool = True) -> tuple[Path, Path]:
    """Fetch (metadata, class names) at the pinned commit into `dest_dir` (or find them there); returns their paths."""
    dest_dir = Path(dest_dir)
    paths = [fetch_verified(url, dest_dir / name, sha, allow_download) for name, (url, sha) in GENEVAL_FILES.items()]
    return paths[0], paths[1]
