"""Score generated images with registered scorers, per image, resumably, fingerprints stored with the scores.

This is annotation (miro.data.annotate) over a source that lists the generated images: the same crash-safe
part files, resume, failure rows and refusal to mix scorer fingerprints in one file. Image k of prompt p
has sample_id p * SAMPLE_STRIDE + k. A shard writes its own file; the unsharded run merges the shard files
into `scores.parquet` before scoring whatever is still missing. Scores of two evaluations are comparable
only when every shared scorer has the same fingerprint: `check_comparable` refuses otherwise.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from harness.evaluation.generate import MAX_SAMPLES, WHOLE, Shard, image_path
from harness.prompts import Prompt
from miro.data.annotate import AnnotationReport, annotate, merge_annotations, read_annotation
from miro.data.shapes import ShapesWorldConfig
from miro.data.sources import SourceItem, decode_image
from miro.errors import MiroError
from miro.rewards.base import Scorer
from miro.rewards.registry import load_scorer, scorer_names

SAMPLE_STRIDE = MAX_SAMPLES
SHAPES_PREFIX = "shapes_"  # the shapes world's analytic scorers (miro/rewards/shapes_entries.py) take `world`


def sample_id(prompt_index: int, sample_index: int) -> int:
    return prompt_index * SAMPLE_STRIDE + sample_index


class GeneratedImages:
    """A random-access source (miro.data.sources.Source) over the images of a plan that exist on disk."""

    def __init__(self, folder: str | Path, prompts: Sequence[Prompt], samples_per_prompt: int, shard: Shard = WHOLE):
        self.entries = [(p, k, image_path(folder, p.index, k)) for p in prompts for k in range(samples_per_prompt)
                        if shard.owns(p.index, k, samples_per_prompt)]
        self.entries = [e for e in self.entries if e[2].is_file()]
        self.sample_ids = [sample_id(p.index, k) for p, k, _ in self.entries]
        self.problems: list[str] = []

    def __len__(self) -> int:
        return len(self.entries)

    def item(self, index: int) -> SourceItem:
        prompt, _, path = self.entries[index]
        return SourceItem(self.sample_ids[index], prompt.text, lambda: decode_image(path.read_bytes()))


def default_scorers(world: ShapesWorldConfig | None) -> list[str]:
    """Every shapes reward for a shapes-world checkpoint; other runs must name their scorers."""
    if world is None:
        raise MiroError("name the scorers with --scorers (and their weights with --scorer-option NAME.KEY=VALUE, "
                        "e.g. pickscore.model_dir=/weights/PickScore_v1) for a checkpoint outside the shapes world")
    return [name for name in scorer_names() if name.startswith(SHAPES_PREFIX)]


def load_scorers(names: Sequence[str], options: Mapping[str, Mapping[str, Any]] | None = None,
                 world: ShapesWorldConfig | None = None) -> dict[str, Scorer]:
    """Build each named scorer with its options; shapes scorers get the checkpoint's world."""
    options = options or {}
    for name in options:
        if name not in names:
            raise MiroError(f'--scorer-option given for "{name}", which is not among the scorers ({", ".join(names)}); add it to --scorers')
    scorers = {}
    for name in names:
        extra = {"world": world} if world is not None and name.startswith(SHAPES_PREFIX) else {}
        scorers[name] = load_scorer(name, **extra, **options.get(name, {}))
    return scorers


def scores_path(out: str | Path, shard: Shard = WHOLE) -> Path:
    name = "scores.parquet" if shard.whole else f"scores.shard-{shard.index}-of-{shard.count}.parquet"
    return Path(out) / name


def score_images(folder: str | Path, prompts: Sequence[Prompt], samples_per_prompt: int, scorers: Mapping[str, Scorer],
                 out: str | Path, shard: Shard = WHOLE, batch_size: int = 64, progress: bool = True) -> AnnotationReport:
    """Score every unscored image of this shard into its scores file (the whole run first merges the shards')."""
    path = scores_path(out, shard)
    if shard.whole:
        shard_files = sorted(Path(out).glob("scores.shard-*-of-*.parquet"))
        if shard_files:
            merge_annotations([path, *shard_files] if path.is_file() else shard_files, path)
    source = GeneratedImages(folder, prompts, samples_per_prompt, shard)
    return annotate(source, list(scorers.values()), path, batch_size=batch_size, progress=progress)


def read_scores(path: str | Path) -> pd.DataFrame:
    """The wide score table (miro.data.annotate) plus prompt_index and sample columns; records in .attrs["scorers"]."""
    table = read_annotation(path)
    table["prompt_index"] = table["sample_id"] // SAMPLE_STRIDE
    table["sample"] = table["sample_id"] % SAMPLE_STRIDE
    return table


def check_comparable(tables: Mapping[str, pd.DataFrame]) -> None:
    """Refuse to compare score tables (label -> read_scores table) whose shared scorers' fingerprints differ."""
    seen: dict[str, tuple[str, str]] = {}
    for label, table in tables.items():
        for name, record in table.attrs["scorers"].items():
            first = seen.setdefault(name, (label, record["fingerprint"]))
            if first[1] != record["fingerprint"]:
                raise MiroError(f'scorer "{name}" has fingerprint {record["fingerprint"]} in {label} but {first[1]} in {first[0]}; '
                                "rescore both with the same scorer version before comparing them")
