"""The shapes world: a procedural image-caption dataset that behaves like web data, for laptops.

Each sample is drawn from its own seed, so an image never depends on batch size, worker count or resume
point. The distribution (defaults; every geometric quantity is in pixels at 32 px and scales with the
resolution):
- Caption first: a tag is chosen uniformly among `tags` (GenEval's six forms) and its mentioned objects
  are drawn: one object (single_object, colors), two objects of different shapes (two_object,
  color_attr, position: a relation from left of / right of / above / below that GenEval's
  `relative_position` gives alone), or N = 2..max_objects objects of one shape (counting). Colours are
  uniform over `colors`; two colours in color_attr differ when the palette allows.
- Unmentioned extra objects, always of a shape the caption does not name (so the caption stays true
  under GenEval's rules): enough to reach `min_objects`, plus one with `extra_object_prob` (0.15),
  never more than `max_objects` in all.
- Objects: square boxes of side U(10, 16) px (at most 14 px when there are several, so two fit side by
  side; when four random layouts fail, all sides shrink by 5%), 2 px apart and 1 px from the border,
  drawn anti-aliased (4 x 4 supersampling) on a flat grey (0.5) background: circle, square, upward
  isosceles triangle, diamond.
  With `cut_prob` (0.1) one object sticks 25-50% of its side out of the image.
- Clutter with `clutter_prob` (0.15): 1-4 specks of radius 0.6-1.2 px in the world's colours.
- Image corruptions, independent, in this order: Gaussian blur (p 0.5, sigma U(0.4, 1.6) px), contrast
  blended toward the image mean by a in U(0.3, 0.85) (p 0.5), Gaussian noise (p 0.5, std U(0.03, 0.2)),
  then clipped and quantised to uint8.
- Wrong captions with `wrong_caption_prob` (0.3): a quarter unrelated (a fresh caption that does not
  describe the image), the rest one attribute flipped (count, color, object or relation, as the tag
  allows); a corrupted caption is checked to be false for the true scene.
Scene, caption corruption, clutter and image corruption draw from separate streams of the sample's seed,
so changing, say, `blur_prob` leaves every scene and caption as it was.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from miro.data.shapes_prompts import (
    COLOR_NAMES,
    NUMBER_WORDS,
    OPPOSITE,
    RELATIONS,
    SHAPE_NAMES,
    TAGS,
    TWO_CLASS_TAGS,
    Metadata,
    Seen,
    clause,
    describes,
    make_metadata,
)
from miro.detection import Box, relative_position
from miro.errors import MiroError

# RGB in [0, 1] for GenEval's ten colour names, far apart in hue and from the grey background.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.10, 0.10),
    "orange": (0.95, 0.55, 0.05),
    "yellow": (0.95, 0.90, 0.10),
    "green": (0.10, 0.65, 0.15),
    "blue": (0.10, 0.25, 0.90),
    "purple": (0.55, 0.15, 0.75),
    "pink": (1.00, 0.60, 0.80),
    "brown": (0.45, 0.25, 0.08),
    "black": (0.05, 0.05, 0.05),
    "white": (0.97, 0.97, 0.97),
}
assert tuple(PALETTE) == COLOR_NAMES
REFERENCE_RESOLUTION = 32  # geometric config values are pixels at this resolution
RESOLUTIONS = (32, 64)
_SUPERSAMPLE = 4
_GAP, _MARGIN = 2.0, 1.0  # px at 32 between object boxes, and from the border


@dataclass(frozen=True)
class ShapesWorldConfig:
    """What the shapes world draws; see the module docstring for the distribution. Ranges are (low, high)."""

    resolution: int = 32
    shapes: tuple[str, ...] = ("circle", "square", "triangle")
    colors: tuple[str, ...] = ("red", "green", "blue", "yellow")
    tags: tuple[str, ...] = TAGS
    min_objects: int = 1
    max_objects: int = 3
    object_size: tuple[float, float] = (10.0, 16.0)  # box side, px at 32
    extra_object_prob: float = 0.15
    background: float = 0.5  # grey level
    blur_prob: float = 0.5
    blur_sigma: tuple[float, float] = (0.4, 1.6)  # px at 32
    contrast_prob: float = 0.5
    contrast_blend: tuple[float, float] = (0.3, 0.85)  # weight of the mean
    noise_prob: float = 0.5
    noise_std: tuple[float, float] = (0.03, 0.2)
    wrong_caption_prob: float = 0.3
    unrelated_caption_fraction: float = 0.25  # of the wrong captions
    clutter_prob: float = 0.15
    clutter_specks: tuple[int, int] = (1, 4)
    cut_prob: float = 0.1

    def __post_init__(self) -> None:
        for f in fields(self):  # lists from JSON or the command line become tuples
            if isinstance(getattr(self, f.name), list):
                object.__setattr__(self, f.name, tuple(getattr(self, f.name)))
        _check(self, "resolution", _is_int(self.resolution) and self.resolution in RESOLUTIONS, f"one of {RESOLUTIONS}")
        for name, vocabulary in (("shapes", SHAPE_NAMES), ("colors", COLOR_NAMES), ("tags", TAGS)):
            value = getattr(self, name)
            ok = isinstance(value, tuple) and 0 < len(value) == len(set(value)) and set(value) <= set(vocabulary)
            _check(self, name, ok, f"distinct names from {', '.join(vocabulary)}")
        _check(self, "min_objects", _is_int(self.min_objects) and 1 <= self.min_objects <= 4, "an integer in 1..4")
        ok = _is_int(self.max_objects) and self.min_objects <= self.max_objects <= 4
        _check(self, "max_objects", ok, "an integer in min_objects..4")
        for name, low, high in (
            ("object_size", 6.0, 24.0),
            ("blur_sigma", 0.0, 4.0),
            ("contrast_blend", 0.0, 0.95),
            ("noise_std", 0.0, 0.5),
            ("clutter_specks", 1, 8),
        ):
            value = getattr(self, name)
            ok = isinstance(value, tuple) and len(value) == 2 and all(map(_is_number, value))
            ok = ok and low <= value[0] <= value[1] <= high
            _check(self, name, ok, f"a pair (low, high) with {low} <= low <= high <= {high}")
        for f in fields(self):
            if f.name.endswith(("_prob", "_fraction")) or f.name == "background":
                value = getattr(self, f.name)
                _check(self, f.name, _is_number(value) and 0.0 <= value <= 1.0, "a number in [0, 1]")
        for color in self.colors:
            distance = float(np.linalg.norm(np.subtract(PALETTE[color], self.background)))
            _check(self, "background", distance >= 0.3, f"a grey at least 0.3 from every colour ({color} is not)")
        for tag in self.tags:
            _check(self, "tags", bool(mentioned_counts(self, tag)), f"tags this world can draw ({tag!r} needs "
                   "two shapes, max_objects >= 2, or a shape left for extras to reach min_objects)")

    @property
    def scale(self) -> float:
        """Pixels per reference (32 px) pixel."""
        return self.resolution / REFERENCE_RESOLUTION


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(config: ShapesWorldConfig, name: str, ok: bool, allowed: str) -> None:
    if not ok:
        raise MiroError(f"ShapesWorldConfig.{name}={getattr(config, name)!r} is not allowed; use {allowed}")


def mentioned_counts(config: ShapesWorldConfig, tag: str) -> list[int]:
    """How many objects a caption of `tag` can name in this world (empty: the tag cannot be drawn)."""
    classes = 2 if tag in TWO_CLASS_TAGS else 1
    if classes > len(config.shapes):
        return []
    counts = list(range(2, 5)) if tag == "counting" else [classes]
    extras_possible = len(config.shapes) > classes
    return [m for m in counts if m <= config.max_objects and (m >= config.min_objects or extras_possible)]


@dataclass(frozen=True)
class ShapeObject:
    """One drawn object: box (x1, y1, x2, y2) of its visible part in pixels, mask = coverage >= 0.5."""

    shape: str
    color: str
    box: Box
    mask: np.ndarray
    cut: bool = False


@dataclass(frozen=True)
class Corruptions:
    """What degraded the image (0 / False = not applied)."""

    blur_sigma: float = 0.0  # px at this resolution
    contrast_blend: float = 0.0
    noise_std: float = 0.0
    clutter: int = 0  # number of specks
    cut: bool = False


@dataclass(frozen=True)
class ShapesSample:
    """One image (H, W, 3) uint8 with its caption, the caption's metadata, and the truth behind both."""

    image: np.ndarray
    caption: str
    metadata: Metadata  # GenEval metadata of `caption` as written
    objects: tuple[ShapeObject, ...]
    true_metadata: Metadata  # the caption before any corruption
    caption_error: str | None  # None, "count", "color", "object", "relation" or "unrelated"
    corruptions: Corruptions

    @property
    def tag(self) -> str:
        return self.metadata["tag"]

    @property
    def true_caption(self) -> str:
        return self.true_metadata["prompt"]

    def seen(self) -> list[Seen]:
        """The true objects as GenEval's rules read them."""
        return [Seen(o.shape, o.color, o.box) for o in self.objects]


def _choice(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _describe(config: ShapesWorldConfig, rng: np.random.Generator) -> tuple[Metadata, list[tuple[str, str]]]:
    """A caption's metadata and its objects (shape, colour) in placement order (position: target first)."""
    tag = _choice(rng, config.tags)
    count = int(rng.choice(mentioned_counts(config, tag)))
    picked = rng.choice(len(config.shapes), 2 if tag in TWO_CLASS_TAGS else 1, replace=False)
    a, b = config.shapes[picked[0]], config.shapes[picked[-1]]  # distinct when the tag names two classes
    ca, cb = (config.colors[i] for i in rng.choice(len(config.colors), 2, replace=len(config.colors) < 2))
    if tag == "single_object":
        return make_metadata(tag, [clause(a)]), [(a, ca)]
    if tag == "colors":
        return make_metadata(tag, [clause(a, color=ca)]), [(a, ca)]
    if tag == "two_object":
        return make_metadata(tag, [clause(a), clause(b)]), [(a, ca), (b, cb)]
    if tag == "color_attr":
        return make_metadata(tag, [clause(a, color=ca), clause(b, color=cb)]), [(a, ca), (b, cb)]
    if tag == "position":
        relation = _choice(rng, RELATIONS)
        return make_metadata(tag, [clause(b), clause(a, position=(relation, 0))]), [(b, cb), (a, ca)]
    return make_metadata(tag, [clause(a, count)]), [(a, _choice(rng, config.colors)) for _ in range(count)]


def _add_extras(config: ShapesWorldConfig, rng: np.random.Generator, metadata: Metadata,
                objects: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Unmentioned objects of unmentioned shapes: enough for min_objects, plus one with extra_object_prob."""
    unmentioned = [s for s in config.shapes if s not in {c["class"] for c in metadata["include"]}]
    wanted = max(0, config.min_objects - len(objects)) + int(rng.random() < config.extra_object_prob)
    wanted = min(wanted, config.max_objects - len(objects)) if unmentioned else 0
    return objects + [(_choice(rng, unmentioned), _choice(rng, config.colors)) for _ in range(wanted)]


def _separated(a: Box, b: Box, gap: float) -> bool:
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def _clip(box: Box, size: int) -> Box:
    return (max(box[0], 0.0), max(box[1], 0.0), min(box[2], float(size)), min(box[3], float(size)))


def _place(config: ShapesWorldConfig, rng: np.random.Generator, sides: np.ndarray, relation: str | None,
           cut: int | None) -> list[Box] | None:
    """Full (unclipped) boxes for objects of these sides, or None when one does not fit in 50 tries.

    Boxes keep a gap; object `cut` sticks 25-50% out of one border; with a relation, object 1 must stand
    in exactly that GenEval relation to object 0 (visible boxes).
    """
    res, gap, margin = config.resolution, _GAP * config.scale, _MARGIN * config.scale
    boxes: list[Box] = []
    for i, side in enumerate(sides):
        for _ in range(50):
            x, y = rng.uniform(margin, res - margin - side, 2)
            if i == cut:
                out = rng.uniform(0.25, 0.5) * side
                axis, end = rng.integers(2), rng.integers(2)
                edge = -out if end == 0 else res + out - side
                x, y = (edge, y) if axis == 0 else (x, edge)
            box = (float(x), float(y), float(x + side), float(y + side))
            if not all(_separated(box, other, gap) for other in boxes):
                continue
            if i == 1 and relation is not None and relative_position(_clip(box, res), _clip(boxes[0], res)) != {relation}:
                continue
            boxes.append(box)
            break
        else:
            return None
    return boxes


def _coverage(shape: str, box: Box, res: int) -> tuple[int, int, np.ndarray]:
    """Anti-aliased coverage of one shape: (row0, col0, patch) with patch in [0, 1] inside the image."""
    x0, y0 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
    x1, y1 = min(int(np.ceil(box[2])), res), min(int(np.ceil(box[3])), res)
    half = (box[2] - box[0]) / 2
    u = (x0 + (np.arange((x1 - x0) * _SUPERSAMPLE) + 0.5) / _SUPERSAMPLE - (box[0] + half)) / half  # (w*s,)
    v = (y0 + (np.arange((y1 - y0) * _SUPERSAMPLE) + 0.5) / _SUPERSAMPLE - (box[1] + half)) / half  # (h*s,)
    u, v = np.abs(u)[None, :], v[:, None]
    if shape == "circle":
        inside = u**2 + v**2 <= 1
    elif shape == "square":
        inside = (u <= 1) & (np.abs(v) <= 1)
    elif shape == "triangle":  # apex at the top (v = -1), base at the bottom (v = 1)
        inside = (2 * u <= v + 1) & (v <= 1)
    else:  # diamond
        inside = u + np.abs(v) <= 1
    patch = inside.reshape(y1 - y0, _SUPERSAMPLE, x1 - x0, _SUPERSAMPLE).mean(axis=(1, 3))
    return y0, x0, patch


def _paint(image: np.ndarray, y0: int, x0: int, patch: np.ndarray, color: tuple[float, float, float]) -> None:
    """Alpha-composite a flat colour through a coverage patch, in place."""
    region = image[y0 : y0 + patch.shape[0], x0 : x0 + patch.shape[1]]
    region += patch[..., None] * (np.asarray(color, dtype=np.float32) - region)


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur over the (H, W) axes of (..., H, W, C), with reflected borders."""
    radius = max(int(np.ceil(3 * sigma)), 1)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    for axis in (images.ndim - 3, images.ndim - 2):
        pad = [(radius, radius) if a == axis else (0, 0) for a in range(images.ndim)]
        padded = np.pad(images, pad, mode="reflect")
        n = images.shape[axis]
        images = sum(w * padded.take(np.arange(k, k + n), axis=axis) for k, w in enumerate(taps))
    return images


def _flip(kind: str, metadata: Metadata, config: ShapesWorldConfig, rng: np.random.Generator) -> Metadata | None:
    """The caption with one attribute changed, or None when this world offers no other value."""
    include = copy.deepcopy(metadata["include"])
    tag = metadata["tag"]
    if kind == "count":
        now = include[0]["count"]
        include[0]["count"] = int(rng.choice([n for n in NUMBER_WORDS if n != now]))
        return make_metadata("counting", include)
    if kind == "relation":
        include[1]["position"][0] = OPPOSITE[include[1]["position"][0]]
        return make_metadata(tag, include)
    i = int(rng.integers(len(include)))
    key, pool = ("color", config.colors) if kind == "color" else ("class", config.shapes)
    taken = {c[key] for c in include} if kind == "object" else {include[i][key]}
    options = [value for value in pool if value not in taken]
    if not options:
        return None
    include[i][key] = _choice(rng, options)
    return make_metadata(tag, include)


_FLIPS = {
    "single_object": ("count", "object"),
    "two_object": ("object",),
    "counting": ("count", "object"),
    "colors": ("color", "object"),
    "position": ("relation", "object"),
    "color_attr": ("color", "object"),
}


def _wrong_caption(config: ShapesWorldConfig, rng: np.random.Generator, metadata: Metadata,
                   seen: list[Seen]) -> tuple[Metadata, str | None]:
    """With wrong_caption_prob, a caption that is false for the scene, and how it was made."""
    if rng.random() >= config.wrong_caption_prob:
        return metadata, None
    if rng.random() >= config.unrelated_caption_fraction:
        for kind in rng.permutation(_FLIPS[metadata["tag"]]):
            flipped = _flip(str(kind), metadata, config, rng)
            if flipped is not None and not describes(flipped, seen):
                return flipped, str(kind)
    for _ in range(8):  # unrelated, also when no flip applies
        other, _ = _describe(config, rng)
        if not describes(other, seen):
            return other, "unrelated"
    return metadata, None


def _draw_scene(config: ShapesWorldConfig, rng: np.random.Generator) -> tuple[Metadata, list[tuple[str, str]], list[Box], bool]:
    """Caption metadata, objects, their full boxes, and whether one is cut."""
    metadata, objects = _describe(config, rng)
    objects = _add_extras(config, rng, metadata, objects)
    relation = metadata["include"][1]["position"][0] if metadata["tag"] == "position" else None
    cut = int(rng.integers(len(objects))) if rng.random() < config.cut_prob else None
    low, high = config.object_size
    if len(objects) > 1:  # two boxes must fit side by side: 2 sides + gap + 2 margins <= 32
        high = max(low, min(high, (REFERENCE_RESOLUTION - _GAP - 2 * _MARGIN) / 2))
    sides = rng.uniform(low, high, len(objects)) * config.scale
    for attempt in range(160):  # 4 fresh layouts per size, then shrink by 5%
        boxes = _place(config, rng, sides * 0.95 ** (attempt // 4), relation, cut)
        if boxes is not None:
            return metadata, objects, boxes, cut is not None
    raise RuntimeError("shapes world: no layout found after shrinking sides to 13%")  # unreachable for valid configs


def _add_clutter(config: ShapesWorldConfig, rng: np.random.Generator, image: np.ndarray, boxes: list[Box]) -> int:
    """Paint small specks away from the objects with clutter_prob; returns how many."""
    if rng.random() >= config.clutter_prob:
        return 0
    res, scale = config.resolution, config.scale
    painted = 0
    for _ in range(int(rng.integers(config.clutter_specks[0], config.clutter_specks[1] + 1))):
        radius = rng.uniform(0.6, 1.2) * scale
        x, y = rng.uniform(radius, res - radius, 2)
        speck = (x - radius, y - radius, x + radius, y + radius)
        if all(_separated(speck, box, scale) for box in boxes):
            _paint(image, *_coverage("circle", speck, res), PALETTE[_choice(rng, config.colors)])
            painted += 1
    return painted


def _degrade(config: ShapesWorldConfig, rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, Corruptions]:
    """Blur, then lower contrast, then add noise, each with its own probability."""
    u = rng.random(6)  # always six draws, so one probability does not shift the others' values
    blur = contrast = noise = 0.0
    if u[0] < config.blur_prob:
        blur = float(np.interp(u[1], [0, 1], config.blur_sigma)) * config.scale
        if blur > 0:
            image = gaussian_blur(image, blur)
    if u[2] < config.contrast_prob:
        contrast = float(np.interp(u[3], [0, 1], config.contrast_blend))
        image = (1 - contrast) * image + contrast * image.mean()
    if u[4] < config.noise_prob:
        noise = float(np.interp(u[5], [0, 1], config.noise_std))
        image = image + noise * rng.standard_normal(image.shape, dtype=np.float32)
    return image, Corruptions(blur_sigma=blur, contrast_blend=contrast, noise_std=noise)


def render_sample(config: ShapesWorldConfig, seed: int) -> ShapesSample:
    """Draw one sample; the same (config, seed) always gives the same sample."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise MiroError(f"shapes world seed={seed!r} is not allowed; use a non-negative integer")
    scene_rng, caption_rng, clutter_rng, image_rng = (np.random.default_rng([int(seed), k]) for k in range(4))
    true_metadata, objects, boxes, cut = _draw_scene(config, scene_rng)
    res = config.resolution
    image = np.full((res, res, 3), config.background, dtype=np.float32)
    drawn = []
    for (shape, color), box in zip(objects, boxes):
        y0, x0, patch = _coverage(shape, box, res)
        _paint(image, y0, x0, patch, PALETTE[color])
        mask = np.zeros((res, res), dtype=bool)
        mask[y0 : y0 + patch.shape[0], x0 : x0 + patch.shape[1]] = patch >= 0.5
        visible = _clip(box, res)
        drawn.append(ShapeObject(shape, color, visible, mask, cut=visible != box))
    seen = [Seen(o.shape, o.color, o.box) for o in drawn]
    metadata, error = _wrong_caption(config, caption_rng, true_metadata, seen)
    clutter = _add_clutter(config, clutter_rng, image, boxes)
    image, corruptions = _degrade(config, image_rng, image)
    corruptions = replace(corruptions, clutter=clutter, cut=cut)
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    return ShapesSample(pixels, metadata["prompt"], metadata, tuple(drawn), true_metadata, error, corruptions)


def render_batch(config: ShapesWorldConfig, seeds: Sequence[int]) -> tuple[torch.Tensor, list[str]]:
    """Images (B, 3, H, W) float in [0, 1] and their captions, one sample per seed."""
    samples = [render_sample(config, int(s)) for s in seeds]
    images = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2).float() / 255
    return images, [s.caption for s in samples]


def sample_seed(seed: int, index: int) -> int:
    """The seed of sample `index` of a dataset seeded with `seed` (independent streams per index)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])


class ShapesDataset(torch.utils.data.Dataset):
    """`num_samples` shapes-world samples, rendered on access; item i depends only on (config, seed, i)."""

    def __init__(self, config: ShapesWorldConfig, num_samples: int, seed: int = 0) -> None:
        if num_samples < 1 or seed < 0:
            raise MiroError(f"ShapesDataset(num_samples={num_samples}, seed={seed}) is not allowed; "
                            "use num_samples >= 1 and seed >= 0")
        self.config, self.num_samples, self.seed = config, num_samples, seed

    def __len__(self) -> int:
        return self.num_samples

    def sample(self, index: int) -> ShapesSample:
        """The full sample behind item `index` (scene, caption metadata, corruptions)."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        return render_sample(self.config, sample_seed(self.seed, index))

    def __getitem__(self, index: int) -> dict[str, object]:
        sample = self.sample(index)
        image = torch.from_numpy(sample.image).permute(2, 0, 1).float() / 127.5 - 1.0  # (3, H, W) in [-1, 1]
        return {"image": image, "caption": sample.caption, "sample_id": index}
