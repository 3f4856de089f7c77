"""The interface every reward model and metric implements, real or analytic.

A scorer is loaded once (weights, tokenizer, preprocessing) and then scores batches of images against
their prompts. Its fingerprint pins everything that changes the numbers (weights hash, preprocessing,
package versions), so scores computed with different fingerprints are never compared.
"""
from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class ScorerInfo:
    """What a scorer is and how to read its numbers."""

    name: str
    version: str
    higher_is_better: bool = True
    score_range: tuple[float, float] = (float("-inf"), float("inf"))
    details: dict[str, str] = field(default_factory=dict)  # weights sha256, preprocessing, package versions

    def fingerprint(self) -> str:
        """A short hash of everything that changes the scores."""
        payload = json.dumps(
            {"name": self.name, "version": self.version, "details": self.details}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


class Scorer(ABC):
    """Scores images against prompts.

    `images` is a float tensor (B, 3, H, W) in [0, 1] (RGB); `prompts` has B strings. The result is a
    float tensor (B,) on the CPU. Scorers that ignore the prompt (aesthetic, quality) still take it.
    """

    info: ScorerInfo

    @abstractmethod
    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor: ...

    @property
    def name(self) -> str:
        return self.info.name
