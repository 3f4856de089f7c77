"""Prompt sets: PartiPrompts from its TSV, GenEval metadata, the shapes world's GenEval set."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import prompts as prompt_sets
from harness.prompts import download_partiprompts, load_prompts, read_partiprompts
from miro.data.shapes import ShapesWorldConfig
from miro.data.shapes_prompts import parse_caption
from miro.errors import MiroError

BENCHMARKS = Path(__file__).resolve().parents[3] / "shared" / "benchmarks"
PARTI = BENCHMARKS / "partiprompts" / "PartiPrompts.tsv"
GENEVAL = BENCHMARKS / "geneval" / "evaluation_metadata.jsonl"


@pytest.fixture
def parti() -> Path:
    if not PARTI.is_file():
        pytest.skip(f"PartiPrompts not found at {PARTI}")
    return PARTI


def test_partiprompts_reads_every_prompt_with_its_category(parti):
    prompts = read_partiprompts(parti)
    assert len(prompts) == 1632
    assert (prompts[0].index, prompts[0].text, prompts[0].group) == (0, "bond", "Abstract")
    assert json.loads(prompts[0].metadata) == {"prompt": "bond", "category": "Abstract", "challenge": "Basic"}
    assert all(p.spec is None for p in prompts)  # not GenEval prompts: no GenEval judgement
    assert load_prompts(str(parti)) == prompts


def test_partiprompts_refuses_a_wrong_header_or_a_missing_file(tmp_path):
    bad = tmp_path / "p.tsv"
    bad.write_text("text,category\nbond,Abstract\n")
    with pytest.raises(MiroError, match="header is"):
        read_partiprompts(bad)
    with pytest.raises(MiroError, match="not found at .*pass the path to PartiPrompts.tsv"):
        read_partiprompts(tmp_path / "missing.tsv")


def test_partiprompts_download_checks_the_pinned_checksum(tmp_path, monkeypatch, parti):
    monkeypatch.setattr(prompt_sets, "PARTI_URL", parti.as_uri())
    assert read_partiprompts(download_partiprompts(tmp_path))[0].text == "bond"
    monkeypatch.setattr(prompt_sets, "PARTI_SHA256", "0" * 64)
    with pytest.raises(MiroError, match="does not match the expected"):
        download_partiprompts(tmp_path / "again")


def test_geneval_metadata_keeps_each_prompts_spec():
    if not GENEVAL.is_file():
        pytest.skip(f"GenEval metadata not found at {GENEVAL}")
    prompts = load_prompts(str(GENEVAL))
    assert len(prompts) == 553
    assert prompts[0].spec is not None and prompts[0].metadata == prompts[0].spec.source
    assert prompts[0].group == "single_object"


def test_shapes_prompts_are_geneval_prompts_the_world_can_read():
    prompts = load_prompts("shapes", world=ShapesWorldConfig())
    assert [p.index for p in prompts] == list(range(len(prompts)))
    assert {p.group for p in prompts} == {"single_object", "two_object", "counting", "colors", "position", "color_attr"}
    assert all(p.spec is not None and parse_caption(p.text) is not None for p in prompts)
    validation, test = (load_prompts(f"shapes-{half}", world=ShapesWorldConfig()) for half in ("validation", "test"))
    assert len(validation) + len(test) == len(prompts)
    assert sorted(p.index for p in validation + test) == list(range(len(prompts))), "halves keep the set's indices"
    assert all(prompts[p.index].text == p.text for p in validation + test)
    for group in {p.group for p in prompts}:
        assert sum(p.group == group for p in test) >= 10 and sum(p.group == group for p in validation) >= 10


def test_unknown_prompt_sets_are_refused_with_the_choices():
    with pytest.raises(MiroError, match="neither a set"):
        load_prompts("partiprompts")
    with pytest.raises(MiroError, match="needs a shapes-world checkpoint"):
        load_prompts("shapes")


def test_a_split_holds_every_tenth_text_of_each_category_and_never_shares_one(parti):
    validation, test = load_prompts(f"{parti}:validation"), load_prompts(f"{parti}:test")
    assert (len(validation), len(test)) == (169, 1463)
    assert not {p.text for p in validation} & {p.text for p in test}
    whole = read_partiprompts(parti)
    assert {p.group for p in validation} == {p.group for p in whole}  # every category is tuned on
    assert all(whole[p.index] == p for p in (*validation, *test))  # indices (and so image seeds) as in the whole set
    with pytest.raises(MiroError, match="the shapes world has its own halves; use shapes-validation"):
        load_prompts("shapes:validation", world=ShapesWorldConfig())
