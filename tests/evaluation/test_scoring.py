"""Scoring generated images: per image, resumable, sharded then merged, fingerprints kept and checked."""
from __future__ import annotations

import pytest

from harness.evaluation.generate import GenerationOptions, Shard, generate_images
from harness.evaluation.run import world_of
from harness.evaluation.scoring import (
    check_comparable,
    default_scorers,
    load_scorers,
    read_scores,
    score_images,
    scores_path,
)
from harness.prompts import load_prompts
from miro.config import SampleConfig
from miro.errors import MiroError

from .helpers import CountingScorer

OPTIONS = GenerationOptions(SampleConfig(steps=1, guidance_scale=1.0), samples_per_prompt=2, batch_size=8)


@pytest.fixture(scope="module")
def images(generator, tmp_path_factory):
    """(folder, prompts): 2 images of each of 3 shapes prompts."""
    folder = tmp_path_factory.mktemp("scoring") / "images"
    prompts = load_prompts("shapes", world=world_of(generator.config))[:3]
    generate_images(generator, prompts, folder, OPTIONS, progress=False)
    return folder, prompts


def test_every_image_gets_a_score_and_the_scorers_fingerprint(images, tmp_path):
    folder, prompts = images
    scorer = CountingScorer()
    report = score_images(folder, prompts, 2, {"brightness": scorer}, tmp_path, progress=False)
    assert report.samples == 6 and scorer.calls == 6
    table = read_scores(scores_path(tmp_path))
    assert sorted(zip(table["prompt_index"], table["sample"])) == [(p, k) for p in range(3) for k in range(2)]
    assert (table["brightness__status"] == "ok").all()
    assert table.attrs["scorers"]["brightness"]["fingerprint"] == scorer.info.fingerprint()
    again = score_images(folder, prompts, 2, {"brightness": scorer}, tmp_path, progress=False)
    assert again.samples == 0 and scorer.calls == 6  # resumed: nothing scored twice


def test_shards_score_their_share_and_the_whole_run_merges_them(images, tmp_path):
    folder, prompts = images
    scorer = CountingScorer()
    for index in range(2):
        score_images(folder, prompts, 2, {"brightness": scorer}, tmp_path, Shard(index, 2), progress=False)
    assert scorer.calls == 6 and len(list(tmp_path.glob("scores.shard-*-of-2.parquet"))) == 2
    report = score_images(folder, prompts, 2, {"brightness": scorer}, tmp_path, progress=False)
    assert report.samples == 0 and scorer.calls == 6
    assert len(read_scores(scores_path(tmp_path))) == 6


def test_scores_of_another_scorer_version_never_mix_or_compare(images, tmp_path):
    folder, prompts = images
    score_images(folder, prompts, 2, {"brightness": CountingScorer()}, tmp_path / "a", progress=False)
    score_images(folder, prompts, 2, {"brightness": CountingScorer(version="2")}, tmp_path / "b", progress=False)
    with pytest.raises(MiroError, match="scores of different model versions must not mix"):
        score_images(folder, prompts, 2, {"brightness": CountingScorer(version="2")}, tmp_path / "a", progress=False)
    a, b = read_scores(scores_path(tmp_path / "a")), read_scores(scores_path(tmp_path / "b"))
    check_comparable({"arm": a, "baseline": a})
    with pytest.raises(MiroError, match='"brightness" has fingerprint .* in baseline but .* in arm; rescore both'):
        check_comparable({"arm": a, "baseline": b})


def test_shapes_checkpoints_default_to_every_shapes_reward(generator):
    world = world_of(generator.config)
    names = default_scorers(world)
    assert {"shapes_alignment", "shapes_quality", "shapes_size"} <= set(names)
    assert all(s.info.details["world"] == repr(world) for s in load_scorers(["shapes_size"], world=world).values())
    with pytest.raises(MiroError, match="name the scorers with --scorers"):
        default_scorers(None)
    with pytest.raises(MiroError, match='given for "pickscore", which is not among the scorers'):
        load_scorers(["shapes_size"], {"pickscore": {"model_dir": "x"}}, world)
    with pytest.raises(MiroError, match='unknown scorer "shapes_sise" \\(did you mean "shapes_size"\\?\\)'):
        load_scorers(["shapes_sise"], world=world)
