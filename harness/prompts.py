"""Prompt sets for evaluation: the shapes world's GenEval set, GenEval's own metadata, PartiPrompts.

Every set becomes a list of `Prompt`s with the line written to each prompt folder's `metadata.jsonl`.
GenEval-format sets (shapes, GenEval) carry their parsed `PromptSpec`, so the folder is judged by the
very same GenEval code and also reads in the reference tools. PartiPrompts (the paper's set for reward
means) is read from a user-given TSV or fetched at the pinned commit with a checksum, like GenEval's files.

Any set but the shapes world's (which has its own halves) can be split for tuning: `SET:validation` is every
tenth distinct text of each group (PartiPrompts category, GenEval tag) in the order of their sha256, the first
included; `SET:test` is the rest. The split depends on nothing but the prompts' texts and groups (no
seed to lose, no file to keep), so a study that tunes on `parti:validation` and reports `parti:test` never
tunes on a prompt it reports.
"""
from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.geneval.metadata import PromptSpec, download_geneval_files, parse_prompt, read_metadata
from miro.benchmark_files import PARTI_SHA256, PARTI_URL, fetch_verified
from miro.errors import MiroError

if TYPE_CHECKING:
    from miro.data.shapes import ShapesWorldConfig

PARTI_COLUMNS = ("Prompt", "Category", "Challenge", "Note")
NAMED_SETS = ("shapes", "shapes-validation", "shapes-test", "geneval", "parti")
SPLITS = ("validation", "test")
VALIDATION_EVERY = 10  # one prompt in ten of each group is a validation prompt


@dataclass(frozen=True)
class Prompt:
    """One prompt: its index in the set (the folder name and part of every image's seed), its text, a
    group label (GenEval tag or Parti category), the metadata.jsonl line, and GenEval's spec when it has one."""

    index: int
    text: str
    group: str
    metadata: str
    spec: PromptSpec | None = None


def from_specs(specs: list[PromptSpec]) -> list[Prompt]:
    return [Prompt(i, s.prompt, s.tag, s.source, s) for i, s in enumerate(specs)]


def read_partiprompts(path: str | Path) -> list[Prompt]:
    """PartiPrompts.tsv (tab separated, header Prompt / Category / Challenge / Note), one prompt a row."""
    path = Path(path)
    if not path.is_file():
        raise MiroError(f"PartiPrompts file not found at {path}; pass the path to PartiPrompts.tsv or use --prompts parti --allow-download to fetch it")
    with open(path, newline="", encoding="utf-8") as fp:
        reader = csv.DictReader(fp, delimiter="\t")
        if tuple(reader.fieldnames or ()) != PARTI_COLUMNS:
            raise MiroError(f"{path}: header is {reader.fieldnames}, expected {list(PARTI_COLUMNS)} (tab separated)")
        rows = list(reader)
    prompts = []
    for i, row in enumerate(rows):
        if not (row["Prompt"] or "").strip():
            raise MiroError(f"{path}:{i + 2}: empty prompt; fix or delete the row")
        line = json.dumps({"prompt": row["Prompt"], "category": row["Category"], "challenge": row["Challenge"]})
        prompts.append(Prompt(i, row["Prompt"], row["Category"], line))
    return prompts


def download_partiprompts(dest_dir: str | Path, allow_download: bool = True) -> Path:
    """Fetch PartiPrompts.tsv at the pinned commit into `dest_dir` (or find it there), refusing a file whose sha256 differs."""
    return fetch_verified(PARTI_URL, Path(dest_dir) / "PartiPrompts.tsv", PARTI_SHA256, allow_download)


def shapes_prompts(world: ShapesWorldConfig, split: str = "") -> list[Prompt]:
    """The shapes world's GenEval prompt set (`miro.data.shapes_prompts`), or its `validation` / `test` half
    (tune guidance and targets on one, report the other). A half keeps each prompt's index in the whole
    set, so a caption repeated across the halves never draws the same image seeds in both."""
    from miro.data.shapes_prompts import shapes_geneval_prompts, split_indices

    metadata = shapes_geneval_prompts(world)
    indices = list(range(len(metadata)))
    if split:
        indices = sorted(dict(zip(("validation", "test"), split_indices(metadata)))[split])
    specs = [(i, parse_prompt(metadata[i], f"shapes prompt {i}")) for i in indices]
    return [Prompt(i, s.prompt, s.tag, s.source, s) for i, s in specs]


def split_of(which: str) -> tuple[str, str]:
    """("parti", "validation") for "parti:validation"; (which, "") for a set named without a split."""
    base, sep, split = which.rpartition(":")
    return (base, split) if sep and split in SPLITS else (which, "")


def held_out_split(prompts: list[Prompt], split: str) -> list[Prompt]:
    """The `validation` or `test` part of `prompts` (module docstring). A text chosen for validation in any group is
    left out of the test part wherever it appears. Each prompt keeps its index in the whole set, so its images draw
    the same seeds as in the whole set."""
    chosen: set[str] = set()
    for group in dict.fromkeys(p.group for p in prompts):
        texts = sorted({p.text for p in prompts if p.group == group}, key=lambda text: hashlib.sha256(text.encode()).hexdigest())
        chosen.update(texts[::VALIDATION_EVERY])
    return [p for p in prompts if (p.text in chosen) == (split == "validation")]


def load_prompts(which: str, *, world: ShapesWorldConfig | None = None, cache: str | Path = "~/.cache/miro/benchmarks",
                 allow_download: bool = False) -> list[Prompt]:
    """`shapes`, `shapes-validation`, `shapes-test` (need `world`), `geneval` or `parti` (read from `cache`, fetched
    there with a checksum only when `allow_download`), or a path: *.tsv is read as PartiPrompts, *.jsonl as GenEval metadata;
    any but the shapes sets followed by `:validation` or `:test` for that part of it (`held_out_split`)."""
    base, split = split_of(which)
    if split:
        if base.startswith("shapes") and base in NAMED_SETS:
            raise MiroError(f'--prompts "{which}": the shapes world has its own halves; use shapes-validation or shapes-test')
        return held_out_split(load_prompts(base, world=world, cache=cache, allow_download=allow_download), split)
    cache = Path(cache).expanduser()
    if which.startswith("shapes") and which in NAMED_SETS:
        if world is None:
            raise MiroError(f"--prompts {which} needs a shapes-world checkpoint; pass --prompts geneval, parti or a file for other runs")
        return shapes_prompts(world, which.partition("-")[2])
    if which == "geneval":
        return from_specs(read_metadata(download_geneval_files(cache / "geneval", allow_download)[0]))
    if which == "parti":
        return read_partiprompts(download_partiprompts(cache / "partiprompts", allow_download))
    path = Path(which)
    if path.suffix == ".tsv":
        return read_partiprompts(path)
    if path.suffix == ".jsonl":
        return from_specs(read_metadata(path))
    raise MiroError(f'--prompts "{which}" is neither a set ({", ".join(NAMED_SETS)}) nor a .tsv (PartiPrompts) or .jsonl (GenEval metadata) file, '
                    'each optionally followed by :validation or :test')
