"""The shapes world: determinism, captions that mean what they say, the detector, config checks, prompts."""
from __future__ import annotations

import collections
from dataclasses import replace

import numpy as np
import pytest
import torch

from miro.data.shapes import ShapesDataset, ShapesWorldConfig, render_batch, render_sample
from miro.data.shapes_prompts import (
    COLOR_NAMES,
    TAGS,
    describes,
    parse_caption,
    shapes_geneval_prompts,
    split_prompts,
)
from miro.detection import relative_position
from miro.errors import MiroError
from miro.rewards.shapes_detector import ShapesColorClassifier, ShapesDetector

WORLD = ShapesWorldConfig()
CLEAN = replace(WORLD, blur_prob=0.0, noise_prob=0.0, contrast_prob=0.0, clutter_prob=0.0, cut_prob=0.0)


@pytest.fixture(scope="module")
def samples():
    return [render_sample(WORLD, seed) for seed in range(400)]


def test_same_seed_same_sample_and_different_seeds_differ():
    a, b, c = render_sample(WORLD, 11), render_sample(WORLD, 11), render_sample(WORLD, 12)
    assert np.array_equal(a.image, b.image) and a.caption == b.caption and a.metadata == b.metadata
    assert a.corruptions == b.corruptions and [o.box for o in a.objects] == [o.box for o in b.objects]
    assert not np.array_equal(a.image, c.image)
    assert a.image.dtype == np.uint8 and a.image.shape == (32, 32, 3)


def test_dataset_item_depends_only_on_its_index():
    data = ShapesDataset(WORLD, num_samples=10, seed=3)
    first = data[7]
    for i in range(10):
        data[i]
    again = ShapesDataset(WORLD, num_samples=10, seed=3)[7]
    assert torch.equal(first["image"], again["image"]) and first["caption"] == again["caption"]
    assert first["sample_id"] == 7 and first["image"].shape == (3, 32, 32) and first["image"].dtype == torch.float32
    assert -1.0 <= first["image"].min() and first["image"].max() <= 1.0
    assert not torch.equal(first["image"], ShapesDataset(WORLD, num_samples=10, seed=4)[7]["image"])
    with pytest.raises(IndexError):
        data[10]


def test_render_batch_matches_render_sample():
    images, captions = render_batch(WORLD, [5, 6])
    assert images.shape == (2, 3, 32, 32) and 0.0 <= images.min() and images.max() <= 1.0
    one = render_sample(WORLD, 6)
    assert captions[1] == one.caption
    assert torch.equal(images[1], torch.from_numpy(one.image).permute(2, 0, 1).float() / 255)


def test_captions_parse_back_and_mean_what_they_say(samples):
    for s in samples:
        assert parse_caption(s.caption) == s.metadata
        assert parse_caption(s.true_caption) == s.true_metadata
        assert describes(s.true_metadata, s.seen()), s.true_caption
        assert describes(s.metadata, s.seen()) == (s.caption_error is None), (s.caption, s.caption_error)
    assert {s.true_metadata["tag"] for s in samples} == set(TAGS)
    errors = collections.Counter(s.caption_error for s in samples)
    assert set(errors) == {None, "count", "color", "object", "relation", "unrelated"}
    assert 0.2 < 1 - errors[None] / len(samples) < 0.4  # wrong_caption_prob = 0.3


def test_scene_follows_the_config(samples):
    counts = collections.Counter(len(s.objects) for s in samples)
    assert set(counts) <= {1, 2, 3}
    for s in samples:
        assert {o.shape for o in s.objects} <= set(WORLD.shapes) and {o.color for o in s.objects} <= set(WORLD.colors)
    assert any(s.corruptions.cut for s in samples) and any(s.corruptions.clutter for s in samples)
    blur = [s.corruptions.blur_sigma for s in samples if s.corruptions.blur_sigma]
    assert 0.4 <= min(blur) and max(blur) <= 1.6 and 0.4 < len(blur) / len(samples) < 0.6


def test_corruption_settings_leave_scene_and_caption_alone():
    blurred = replace(WORLD, blur_prob=1.0, noise_prob=0.0)
    for seed in range(20):
        a, b = render_sample(WORLD, seed), render_sample(blurred, seed)
        assert a.caption == b.caption and [o.box for o in a.objects] == [o.box for o in b.objects]
        assert b.corruptions.blur_sigma > 0 and b.corruptions.noise_std == 0


def test_every_config_draws_its_tags():
    one_shape = ShapesWorldConfig(shapes=("circle",), tags=("single_object", "colors", "counting"), max_objects=4)
    tags = {render_sample(one_shape, seed).true_metadata["tag"] for seed in range(60)}
    assert tags == {"single_object", "colors", "counting"}
    crowded = ShapesWorldConfig(min_objects=3, max_objects=4, resolution=64)
    assert all(3 <= len(render_sample(crowded, seed).objects) <= 4 for seed in range(30))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("resolution", 48),
        ("shapes", ("circle", "hexagon")),
        ("shapes", ()),
        ("colors", ("red", "red")),
        ("colors", ("grey",)),
        ("tags", ("single_object", "captioning")),
        ("min_objects", 0),
        ("max_objects", 5),
        ("object_size", (16.0, 10.0)),
        ("blur_prob", 1.5),
        ("noise_std", (0.1,)),
        ("background", 0.05),  # too close to black
        ("tags", ("position",)),  # with one shape
    ],
)
def test_bad_config_names_the_field(field, value):
    extra = {"colors": ("black", "red")} if field == "background" else {}
    extra |= {"shapes": ("circle",)} if (field, value) == ("tags", ("position",)) else {}
    with pytest.raises(MiroError, match=f"ShapesWorldConfig.{field}="):
        ShapesWorldConfig(**{field: value, **extra})


def test_config_takes_lists_as_tuples():
    config = ShapesWorldConfig(shapes=["circle", "square"], object_size=[9, 12])
    assert config.shapes == ("circle", "square") and config.object_size == (9, 12)
    assert hash(config) == hash(ShapesWorldConfig(shapes=("circle", "square"), object_size=(9, 12)))


def test_parser_accepts_only_the_templates():
    for text in (
        "a photo of an orange circle",
        "a photo of four triangles",
        "a photo of a diamond below a square",
        "a photo of a red circle and a blue square",
    ):
        assert parse_caption(text)["prompt"] == text
    for text in (
        "a photo of a red circle and a square",  # colour on one object only
        "a photo of a orange circle",  # wrong article
        "a photo of a red circle left of a square",  # coloured position
        "a photo of one circle",
        "a photo of a hexagon",
        "",
        "A photo of a circle",
    ):
        assert parse_caption(text) is None, text


def test_relative_position_matches_geneval_reference_cases():
    box = (0.0, 0.0, 10.0, 10.0)
    assert relative_position(box, (20.0, 0.0, 30.0, 10.0)) == {"left of"}
    assert relative_position((-2.0, 0.0, 8.0, 10.0), box) == set()
    assert relative_position((-3.0, 0.0, 7.0, 10.0), box) == set()
    assert relative_position((-5.0, 0.0, 5.0, 10.0), box) == {"left of"}
    assert relative_position((-40.0, -40.0, -30.0, -30.0), box) == {"above", "left of"}


def _found_right(image, detections, obj, colors) -> bool:
    """A detection of the object's shape, centred box over the object's centre, classified its colour."""
    cx, cy = (obj.box[0] + obj.box[2]) / 2, (obj.box[1] + obj.box[3]) / 2
    return any(
        d.box[0] <= cx <= d.box[2] and d.box[1] <= cy <= d.box[3]
        and colors.classify(image, d, list(COLOR_NAMES)) == obj.color
        for d in detections.get(obj.shape, [])
    )


@pytest.mark.parametrize("config", [CLEAN, replace(CLEAN, resolution=64, shapes=("circle", "square", "triangle", "diamond"))],
                         ids=["32px", "64px-4shapes"])
def test_detector_finds_clean_objects(config):
    scenes = [render_sample(config, seed) for seed in range(150 if config.resolution == 32 else 40)]
    detector, colors = ShapesDetector(config), ShapesColorClassifier(config)
    detections = detector.detect_batch(np.stack([s.image for s in scenes]))
    right = total = confident = 0
    for scene, found in zip(scenes, detections):
        assert sum(len(ds) for ds in found.values()) == len(scene.objects)
        right += sum(_found_right(scene.image, found, obj, colors) for obj in scene.objects)
        confident += sum(d.score > 0.9 for ds in found.values() for d in ds)
        total += len(scene.objects)
    assert right / total >= 0.95 and confident / total >= 0.95


def test_detect_one_image_and_masks():
    scene = render_sample(CLEAN, 1)
    found = ShapesDetector(CLEAN).detect(scene.image)
    for obj in scene.objects:
        (d,) = [d for d in found[obj.shape] if d.mask[obj.mask].mean() > 0.8]
        assert 0.0 < d.score <= 1.0 and d.mask.shape == (32, 32)
    with pytest.raises(MiroError):
        ShapesDetector(CLEAN).detect(scene.image.astype(np.float32))
    with pytest.raises(MiroError, match="did you mean"):
        ShapesColorClassifier().classify(scene.image, d, ["redd"])


def test_prompt_set_is_geneval_metadata():
    prompts = shapes_geneval_prompts(WORLD)
    assert prompts == shapes_geneval_prompts(WORLD) and 120 <= len(prompts) <= 144
    assert [p["tag"] for p in prompts] == sorted((p["tag"] for p in prompts), key=TAGS.index)
    assert {p["tag"] for p in prompts} == set(TAGS)
    singles = [p["prompt"] for p in prompts if p["tag"] == "single_object"]
    assert len(singles) == 20 and set(singles) == {f"a photo of a {s}" for s in WORLD.shapes}  # repeated in turn
    assert len({p["prompt"] for p in prompts if p["tag"] == "color_attr"}) == 24  # enough combinations: no repeats
    for p in prompts:
        assert list(p) == (["tag", "include", "exclude", "prompt"] if p["tag"] == "counting" else ["tag", "include", "prompt"])
        assert parse_caption(p["prompt"]) == p
        for clause in p["include"]:
            assert clause["class"] in WORLD.shapes and list(clause)[:2] == ["class", "count"]
            assert clause.get("color", WORLD.colors[0]) in WORLD.colors
        if p["tag"] == "counting":
            (inc,), (exc,) = p["include"], p["exclude"]
            assert exc == {"class": inc["class"], "count": inc["count"] + 1} and 2 <= inc["count"] <= WORLD.max_objects
        if p["tag"] == "position":
            assert p["include"][1]["position"][1] == 0


def test_split_is_disjoint_balanced_and_deterministic():
    prompts = shapes_geneval_prompts(WORLD)
    validation, test = split_prompts(prompts)
    assert (validation, test) == split_prompts(list(reversed(prompts)))
    texts_v, texts_t = {p["prompt"] for p in validation}, {p["prompt"] for p in test}
    assert texts_v | texts_t == {p["prompt"] for p in prompts}
    once = {p["prompt"] for p in prompts if sum(q["prompt"] == p["prompt"] for q in prompts) == 1}
    assert not texts_v & texts_t & once, "a caption listed once lands in one half only"
    for tag in TAGS:
        assert sum(p["tag"] == tag for p in validation) >= 10 and sum(p["tag"] == tag for p in test) >= 10
