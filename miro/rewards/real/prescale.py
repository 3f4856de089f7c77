"""The released MIRO code's reward keys and the affine pre-scaling it applies before binning.

value = (score + offset) * scale, per scorer (method.md's table). Beware the names: the released key
"clip_score" is JINA CLIP v2 (our `jina_clip`), while our `clip_score` scorer is OpenAI CLIP, the
paper's held-out metric, which has no released key.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from miro.errors import unknown_name_error


@dataclass(frozen=True)
class Prescale:
    """Map a scorer's raw score to the released code's value: (score + offset) * scale."""

    key: str
    scale: float = 1.0
    offset: float = 0.0

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        return (scores + self.offset) * self.scale


RELEASED: dict[str, Prescale] = {
    "jina_clip": Prescale("clip_score", scale=1 / 100),  # logit / 100, about a cosine
    "aesthetic": Prescale("aesthetic_score", scale=1 / 10),  # about 0.1 to 1
    "image_reward": Prescale("image_reward_score", scale=1 / 4, offset=2.0),  # (score + 2) / 4
    "pickscore": Prescale("pick_a_score_score", scale=1 / 100),  # logit_scale * cos / 100
    "hpsv2": Prescale("hpsv2_score"),  # raw cosine, about 0.2 to 0.35
    "vqascore": Prescale("vqa_score"),  # a probability
    "sciscore": Prescale("sciscore_score", scale=1 / 100),  # logit_scale * cos / 100
}


def released_prescale(scorer: str) -> Prescale:
    """The pre-scaling of `scorer` in the released code, or a MiroError for scorers it never used as rewards."""
    if scorer not in RELEASED:
        raise unknown_name_error("scorer with a released reward key", scorer, RELEASED)
    return RELEASED[scorer]
