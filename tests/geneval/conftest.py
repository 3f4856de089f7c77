"""Shared pieces for the GenEval tests: the published prompt files (read in place, never copied) and
a way to write prompt metadata inline."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.geneval.metadata import PromptSpec, parse_prompt

GENEVAL_DATA = Path(__file__).resolve().parents[3] / "shared" / "benchmarks" / "geneval"


@pytest.fixture(scope="session")
def geneval_data() -> Path:
    if not (GENEVAL_DATA / "evaluation_metadata.jsonl").is_file():
        pytest.skip(f"GenEval data not found at {GENEVAL_DATA}")
    return GENEVAL_DATA


def _spec(tag: str, include: list[dict], exclude: list[dict] | None = None, prompt: str = "a photo") -> PromptSpec:
    obj = {"tag": tag, "include": include, **({"exclude": exclude} if exclude else {}), "prompt": prompt}
    return parse_prompt(obj)


@pytest.fixture
def make_spec() -> Callable[..., PromptSpec]:
    """make_spec(tag, include, exclude=None, prompt=...) -> PromptSpec, checked like a metadata line."""
    return _spec
