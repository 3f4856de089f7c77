"""The language of the shapes world: GenEval-style captions, their parser, their meaning, and a prompt set.

A caption is written from GenEval metadata (`{"tag", "include", "exclude"?, "prompt"}`, the format of
GenEval's `evaluation_metadata.jsonl`) with GenEval's own phrasing, and `parse_caption` inverts the
templates exactly, so a training caption, an evaluation prompt and a reward's reading of a prompt are
one and the same object. `constraint_results` is GenEval's judgement (reference/geneval.md) split into
its individual checks, so the alignment reward can give partial credit and the generator can verify that
a corrupted caption is really false.
"""
from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import permutations
from typing import TYPE_CHECKING, Any

from miro.detection import Box, relative_position

if TYPE_CHECKING:
    from miro.data.shapes import ShapesWorldConfig

# Every shape the world can draw and every colour GenEval names (the world uses a subset of each).
SHAPE_NAMES = ("circle", "square", "triangle", "diamond")
COLOR_NAMES = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
RELATIONS = ("left of", "right of", "above", "below")
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
NUMBER_WORDS = {2: "two", 3: "three", 4: "four"}
TWO_CLASS_TAGS = ("two_object", "position", "color_attr")

Metadata = dict[str, Any]


def _noun(clause: dict[str, Any]) -> str:
    """'a circle', 'a red circle', 'an orange square' (GenEval writes 'an' before a vowel)."""
    words = f"{clause['color']} {clause['class']}" if "color" in clause else clause["class"]
    return f"{'an' if words[0] in 'aeiou' else 'a'} {words}"


def caption_text(metadata: Metadata) -> str:
    """The caption GenEval would write for this metadata (its `prompt` field)."""
    tag, include = metadata["tag"], metadata["include"]
    if tag in ("single_object", "colors"):
        return f"a photo of {_noun(include[0])}"
    if tag in ("two_object", "color_attr"):
        return f"a photo of {_noun(include[0])} and {_noun(include[1])}"
    if tag == "counting":
        return f"a photo of {NUMBER_WORDS[include[0]['count']]} {include[0]['class']}s"  # GenEval's naive plural
    if tag == "position":  # "A rel B" is stored as include [B, A with position [rel, 0]]
        return f"a photo of {_noun(include[1])} {include[1]['position'][0]} {_noun(include[0])}"
    raise ValueError(f"unknown tag {tag!r}")


def make_metadata(tag: str, include: list[dict[str, Any]]) -> Metadata:
    """GenEval metadata with its key order; counting gets GenEval's exclude clause {class, count N + 1}."""
    metadata: Metadata = {"tag": tag, "include": include}
    if tag == "counting":
        metadata["exclude"] = [{"class": include[0]["class"], "count": include[0]["count"] + 1}]
    metadata["prompt"] = caption_text(metadata)
    return metadata


def clause(cls: str, count: int = 1, color: str | None = None, position: tuple[str, int] | None = None) -> dict:
    """One include clause in GenEval's key order."""
    out: dict[str, Any] = {"class": cls, "count": count}
    if color is not None:
        out["color"] = color
    if position is not None:
        out["position"] = [position[0], position[1]]
    return out


_SHAPE = "|".join(SHAPE_NAMES)
_COLOR = "|".join(COLOR_NAMES)


def _np(i: int) -> str:
    return rf"an? (?:(?P<c{i}>{_COLOR}) )?(?P<s{i}>{_SHAPE})"


_ONE = re.compile(rf"a photo of {_np(0)}")
_TWO = re.compile(rf"a photo of {_np(0)} and {_np(1)}")
_COUNT = re.compile(rf"a photo of (?P<n>{'|'.join(NUMBER_WORDS.values())}) (?P<s0>{_SHAPE})s")
_POSITION = re.compile(rf"a photo of {_np(0)} (?P<rel>{'|'.join(RELATIONS)}) {_np(1)}")
_NUMBERS = {word: n for n, word in NUMBER_WORDS.items()}


def _read(text: str) -> Metadata | None:
    """Metadata for text of a template's shape (at most one template matches), before the exact check."""
    if m := _ONE.fullmatch(text):
        color = m["c0"]
        return make_metadata("colors" if color else "single_object", [clause(m["s0"], color=color)])
    if m := _COUNT.fullmatch(text):
        return make_metadata("counting", [clause(m["s0"], _NUMBERS[m["n"]])])
    if m := _POSITION.fullmatch(text):
        return make_metadata("position", [clause(m["s1"]), clause(m["s0"], position=(m["rel"], 0))])
    if (m := _TWO.fullmatch(text)) and bool(m["c0"]) == bool(m["c1"]):
        tag = "color_attr" if m["c0"] else "two_object"
        return make_metadata(tag, [clause(m["s0"], color=m["c0"]), clause(m["s1"], color=m["c1"])])
    return None


def parse_caption(text: str) -> Metadata | None:
    """The metadata whose caption is exactly `text`, or None for any text the templates do not write."""
    metadata = _read(text)
    return metadata if metadata is not None and metadata["prompt"] == text else None


@dataclass(frozen=True)
class Seen:
    """An object as the rules see it: true scene objects have score 1, detections their confidence."""

    shape: str
    color: str
    box: Box
    score: float = 1.0


def constraint_results(metadata: Metadata, objects: Sequence[Seen]) -> list[bool]:
    """GenEval's checks one by one: per include clause presence, then colour and position if asked; per
    exclude clause absence. The image is GenEval-correct iff all are True.

    Kept objects are those above GenEval's score threshold (0.9 for counting, else 0.3); a clause's
    found objects are its `count` most confident; a position refers to an earlier clause, which must have
    passed all its checks.
    """
    threshold = 0.9 if metadata["tag"] == "counting" else 0.3
    kept: dict[str, list[Seen]] = {}
    for obj in sorted(objects, key=lambda o: -o.score):
        if obj.score > threshold:
            kept.setdefault(obj.shape, []).append(obj)
    results: list[bool] = []
    matched: list[list[Seen] | None] = []
    for spec in metadata["include"]:
        found = kept.get(spec["class"], [])[: spec["count"]]
        ok = len(found) >= spec["count"]
        results.append(ok)
        if "color" in spec:
            color_ok = ok and all(o.color == spec["color"] for o in found)
            results.append(color_ok)
            ok = color_ok
        if "position" in spec:
            relation, target = spec["position"][0], matched[spec["position"][1]]
            position_ok = ok and target is not None and all(
                relation in relative_position(o.box, t.box) for o in found for t in target
            )
            results.append(position_ok)
            ok = position_ok
        matched.append(found if ok else None)
    for spec in metadata.get("exclude", []):
        results.append(len(kept.get(spec["class"], [])) < spec["count"])
    return results


def describes(metadata: Metadata, objects: Sequence[Seen]) -> bool:
    """True when GenEval would judge an image with exactly these objects correct for this caption."""
    return all(constraint_results(metadata, objects))


PROMPTS_PER_SPLIT = 10  # at least this many prompts per GenEval tag in each of validation and test


def shapes_geneval_prompts(config: ShapesWorldConfig, max_per_tag: int = 24,
                           min_per_tag: int = 2 * PROMPTS_PER_SPLIT) -> list[Metadata]:
    """The shapes world's GenEval prompt set, in GenEval's metadata format and tag order.

    Every combination of the world's shapes, colours, counts (2 to max_objects) and relations is
    enumerated per tag; tags with more than `max_per_tag` combinations keep a fixed, hash-ordered subset.
    A tag with fewer than `min_per_tag` combinations (a 3-shape world has 3 single-object captions) repeats
    them in turn up to `min_per_tag` entries: each entry is its own prompt (index, hence image seeds), so
    a tag's accuracy rests on at least `min_per_tag` / 2 prompts per split, not on 2 or 3. Tags that need
    two shape classes are left out of a one-shape world. Deterministic given the config.
    """
    shapes, colors = config.shapes, config.colors
    pairs = list(permutations(shapes, 2))
    by_tag: dict[str, list[list[dict[str, Any]]]] = {
        "single_object": [[clause(s)] for s in shapes],
        "two_object": [[clause(a), clause(b)] for a, b in pairs],
        "counting": [[clause(s, n)] for s in shapes for n in range(2, config.max_objects + 1)],
        "colors": [[clause(s, color=c)] for s in shapes for c in colors],
        "position": [[clause(b), clause(a, position=(r, 0))] for a, b in pairs for r in RELATIONS],
        "color_attr": [
            [clause(a, color=ca), clause(b, color=cb)] for a, b in pairs for ca in colors for cb in colors if ca != cb
        ],
    }
    prompts: list[Metadata] = []
    for tag in TAGS:
        rows = sorted((make_metadata(tag, include) for include in by_tag[tag]), key=_hash_key)[:max_per_tag]
        if not rows:
            continue
        prompts.extend(copy.deepcopy(rows[i % len(rows)]) for i in range(max(len(rows), min_per_tag)))
    return prompts


def _hash_key(metadata: Metadata) -> str:
    return hashlib.sha256(metadata["prompt"].encode()).hexdigest()


def split_indices(prompts: Sequence[Metadata]) -> tuple[list[int], list[int]]:
    """(validation, test) positions in `prompts`: halves with every tag in both, for tuning on one and
    reporting the other.

    Within each tag (in GenEval's order), prompts are ordered by a hash of their text (stable, so the
    copies of a repeated caption stay together) and dealt alternately: the split does not depend on list
    order, each half holds half of every tag (the odd one goes to validation), a caption listed once
    lands in one half only, and a repeated caption's copies are shared between the halves (different
    images, since a prompt's index seeds its images; in this world every caption is seen in training anyway).
    """
    validation: list[int] = []
    test: list[int] = []
    for tag in TAGS:
        rows = [i for i in range(len(prompts)) if prompts[i]["tag"] == tag]
        rows.sort(key=lambda i: (_hash_key(prompts[i]), i))
        validation.extend(rows[0::2])
        test.extend(rows[1::2])
    return validation, test


def split_prompts(prompts: Sequence[Metadata]) -> tuple[list[Metadata], list[Metadata]]:
    """(validation, test) copies of the prompts at `split_indices`."""
    validation, test = split_indices(prompts)
    return [copy.deepcopy(prompts[i]) for i in validation], [copy.deepcopy(prompts[i]) for i in test]
