"""The shapes world's analytic rewards: in range for any batch, and moving with what they claim to measure."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from miro.data.shapes import ShapesWorldConfig, render_batch, render_sample
from miro.errors import MiroError
from miro.rewards.analytic import AlignmentScorer, CleanlinessScorer, QualityScorer, SizeScorer
from miro.rewards.registry import load_scorer

WORLD = ShapesWorldConfig()
CLEAN = replace(WORLD, blur_prob=0.0, noise_prob=0.0, contrast_prob=0.0, clutter_prob=0.0, cut_prob=0.0)
NAMES = ("shapes_alignment", "shapes_quality", "shapes_size", "shapes_cleanliness")


def _batch(config: ShapesWorldConfig, n: int = 120, captions: str = "caption") -> tuple[torch.Tensor, list[str]]:
    samples = [render_sample(config, seed) for seed in range(n)]
    images = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2).float() / 255
    return images, [getattr(s, captions) for s in samples]


@pytest.fixture(scope="module")
def quality() -> QualityScorer:
    return QualityScorer(WORLD, reference_images=400)


@pytest.mark.parametrize("name", NAMES)
def test_every_reward_is_finite_and_in_range(name):
    scorer = load_scorer(name)
    images, captions = render_batch(WORLD, range(48))
    odd = torch.stack([torch.zeros(3, 32, 32), torch.ones(3, 32, 32), torch.rand(3, 32, 32)])  # flat, flat, noise
    scores = scorer.score(torch.cat([images, odd]), captions + ["a photo of a circle", "hello", ""])
    assert scores.shape == (51,) and scores.dtype == torch.float32 and scores.device.type == "cpu"
    assert torch.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()
    assert scorer.info.name == name and scorer.info.version and scorer.info.score_range == (0.0, 1.0)
    assert scorer.info.details["computation"] and scores.std() > 0


def test_wrong_captions_lower_alignment():
    scorer = AlignmentScorer(WORLD)
    samples = [render_sample(WORLD, seed) for seed in range(300)]
    images = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2).float() / 255
    given = scorer.score(images, [s.caption for s in samples])
    true = scorer.score(images, [s.true_caption for s in samples])
    wrong = torch.tensor([s.caption_error is not None for s in samples])
    assert torch.equal(given[~wrong], true[~wrong])
    assert true[wrong].mean() - given[wrong].mean() > 0.3


def test_alignment_is_near_perfect_on_clean_true_captions_and_zero_on_unknown_text():
    scorer = AlignmentScorer(CLEAN)
    images, captions = _batch(CLEAN, captions="true_caption")
    assert scorer.score(images, captions).mean() > 0.97
    assert scorer.score(images[:2], ["a photo of a hexagon", "two circles"]).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("corruption", ["blur", "noise", "contrast"])
def test_image_corruptions_lower_quality(quality, corruption):
    images, captions = _batch(CLEAN)
    worse, _ = _batch(replace(CLEAN, **{f"{corruption}_prob": 1.0}))  # same scenes, every image degraded
    clean_scores, worse_scores = quality.score(images, captions), quality.score(worse, captions)
    assert (worse_scores < clean_scores).float().mean() > 0.9


def test_quality_ignores_the_caption_and_is_cached(quality):
    images, captions = _batch(WORLD, n=8)
    assert torch.equal(quality.score(images, captions), quality.score(images, [""] * 8))
    assert QualityScorer(WORLD, reference_images=400).info.fingerprint() == quality.info.fingerprint()


def test_size_tracks_object_size():
    small, captions = _batch(replace(CLEAN, object_size=(7.0, 8.0)))
    large, _ = _batch(replace(CLEAN, object_size=(14.0, 15.0)))
    scorer = SizeScorer(CLEAN)
    assert (scorer.score(large, captions) > scorer.score(small, captions)).all()
    samples = [render_sample(WORLD, seed) for seed in range(120)]
    truth = torch.tensor([sum(o.mask.sum() for o in s.objects) / 1024 for s in samples], dtype=torch.float32)
    images, captions = _batch(WORLD)
    measured = scorer.score(images, captions)
    assert torch.corrcoef(torch.stack([truth, measured]))[0, 1] > 0.85


def test_cleanliness_penalises_clutter_and_cut_objects():
    scorer = CleanlinessScorer(CLEAN)
    images, captions = _batch(CLEAN)
    assert scorer.score(images, captions).mean() > 0.97
    for messy in (replace(CLEAN, clutter_prob=1.0), replace(CLEAN, cut_prob=1.0)):
        worse, _ = _batch(messy)
        assert scorer.score(worse, captions).mean() < 0.7


def test_bad_inputs_are_refused():
    scorer = SizeScorer(WORLD)
    with pytest.raises(MiroError, match="images"):
        scorer.score(torch.rand(2, 3, 16, 16), ["a", "b"])
    with pytest.raises(MiroError, match="prompts"):
        scorer.score(torch.rand(2, 3, 32, 32), ["a"])
