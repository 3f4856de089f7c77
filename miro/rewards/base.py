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
from typing import Any

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
    # Scorers with the same non-empty key turn a batch into the same model input, so annotation prepares
    # each batch once for all of them (`prepare`) and hands the result to `score_prepared`.
    preprocessing_key: str = ""

    @abstractmethod
    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor: ...

    def prepare(self, images: torch.Tensor) -> Any:
        """The model input of a batch (the images themselves unless the scorer shares its preprocessing)."""
        return images

    def score_prepared(self, prepared: Any, prompts: Sequence[str]) -> torch.Tensor:
        """Scores from `prepare`'s output; `score(images, p)` equals `score_prepared(prepare(images), p)`."""
        return self.score(prepared, prompts)

    @property
    def name(self) -> str:
        return self.info.name
