"""An estimate of the GPU-hours of every stage of a plan, from the editable table of measured throughputs
(harness/throughputs.toml). It is labelled an estimate wherever it is printed: it scales published and benchmarked
rates, it does not measure this cluster."""
from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from miro.errors import MiroError

if TYPE_CHECKING:
    from harness.plan import Plan  # only a type: the sweep's --help reads THROUGHPUTS without the pipeline's imports

THROUGHPUTS = Path(__file__).with_name("throughputs.toml")
MAX_GPU_HOURS = 1e5  # about 8 times the paper's whole study: a plan above it is a typo until the user says otherwise


def read_throughputs(path: str | Path = THROUGHPUTS) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise MiroError(f"throughput table {path} cannot be read ({err}); fix it or pass --throughputs FILE") from None


def prompt_count(prompts: str, table: Mapping[str, Any]) -> int | None:
    if prompts in table["prompts"]:
        return int(table["prompts"][prompts])
    path = Path(prompts)
    if path.suffix in (".tsv", ".jsonl") and path.is_file():
        return max(len(path.read_text().splitlines()) - (path.suffix == ".tsv"), 0)
    return None


def data_folders(plan: Plan) -> set[tuple[str, str]]:
    return {(a.config.data.source, a.config.data.path) for a in plan.study.arms if a.config.data.source != "shapes"}


def image_count(data: tuple[str, str]) -> int:
    """Samples in an image folder (its file names) or webdataset shards (img2dataset's per-tar stats, else the
    first tar's count times the number of tars: an estimate, as everything here; no image is read)."""
    from miro.data.sources import ImageFolderSource, WebDatasetSource

    source, path = data
    return len(ImageFolderSource(path)) if source == "folder" else WebDatasetSource(path).estimated_len()


def stage_gpu_hours(plan: Plan, table: Mapping[str, Any]) -> dict[str, float | None]:
    """Estimated GPU-hours per stage (None where the table cannot say, e.g. prompt sets of unknown size)."""
    study, hours = plan.study, {}
    per_image = sum(table["annotate"].get(s, table["annotate"]["default"]) for s in study.data.annotate)
    hours["data"] = sum(map(image_count, data_folders(plan))) * per_image / 3600 if study.data.annotate else 0.0
    hours["train"] = sum(u.unit.params["config"]["optim"]["steps"] * u.unit.params["config"]["optim"]["batch_size"]
                         for u in plan.train) * table["train"]["per_sample"] / 3600
    evaluation = 0.0
    for suite in study.evaluation:
        count = prompt_count(suite.prompts, table)
        if count is None:
            return {**hours, "evaluate": None}
        n_images = (suite.limit or count) * suite.samples_per_prompt
        steps = study.arms[0].config.sample.steps
        per = steps * table["generate"]["per_image_step"] + len(suite.scorers or ()) * table["evaluate"]["per_image_scorer"]
        per += table["evaluate"]["geneval_per_image"] if suite.geneval else 0.0
        evaluation += n_images * per * sum(u.suite == suite.name for u in plan.evaluate) / 3600
    hours["evaluate"] = evaluation
    return hours
