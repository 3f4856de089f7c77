"""GenEval's prompt metadata and class names, read from files the user points at.

The files are MIT-licensed data from djghosh13/geneval; the project does not ship them. A user either
passes local paths or calls `download_geneval_files`, which fetches the pinned commit's files and refuses
any whose sha256 differs, so a moved or edited upstream file cannot silently change the benchmark.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from miro.errors import MiroError, did_you_mean, unknown_name_error

TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
RELATIONS = ("left of", "right of", "above", "below")

# The reference repository's files at the commit the published numbers used.
GENEVAL_COMMIT = "af4902f24d3ca90ebbb446dd9891a59e0f82725f"
_RAW = f"https://raw.githubusercontent.com/djghosh13/geneval/{GENEVAL_COMMIT}/prompts"
GENEVAL_FILES = {
    "evaluation_metadata.jsonl": (
        f"{_RAW}/evaluation_metadata.jsonl",
        "5c48e0813e812e3c373fa5c8ed07a8f0a483be30272b4427b0559c8048e67c13",
    ),
    "object_names.txt": (
        f"{_RAW}/object_names.txt",
        "608f6a0e5c8ca1c7a92b818430141fe268c85b7930b50f4160f1d65893b5bacd",
    ),
}


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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        for block in iter(lambda: fp.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_verified(url: str, dest: str | Path, sha256: str, allow_download: bool = True) -> Path:
    """Download `url` to `dest` unless a file with the right sha256 is already there (and only when
    `allow_download`; otherwise a missing file is a one-line error saying how to get it).

    The bytes go to a temporary file first and replace `dest` only when the checksum matches, so an
    interrupted or tampered download never leaves a file that later runs would trust.
    """
    dest = Path(dest)
    if dest.is_file() and sha256_of(dest) == sha256:
        return dest
    if not allow_download:
        raise MiroError(f"{dest} is not there and downloads are off; on a machine with internet run: wget '{url}' -O {dest.name}, "
                        "then pass the local file (or name it in the weights file), or rerun with --allow-download")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
                out.write(response.read())
        except OSError as err:  # URLError, timeouts, refused connections: this machine is offline
            reason = getattr(err, "reason", err)
            raise MiroError(f"cannot download {url} ({reason}); on a machine with internet run: wget '{url}' -O {dest.name}, "
                            "then pass the local file (or name it in the weights file)") from None
        actual = sha256_of(Path(tmp))
        if actual != sha256:
            raise MiroError(f"{url}: sha256 {actual} does not match the expected {sha256}; "
                            "the file changed upstream: download it by hand and check it, or fix the pin")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def download_geneval_files(dest_dir: str | Path, allow_download: bool = True) -> tuple[Path, Path]:
    """Fetch (metadata, class names) at the pinned commit into `dest_dir` (or find them there); returns their paths."""
    dest_dir = Path(dest_dir)
    paths = [fetch_verified(url, dest_dir / name, sha, allow_download) for name, (url, sha) in GENEVAL_FILES.items()]
    return paths[0], paths[1]
