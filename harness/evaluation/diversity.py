"""Per-prompt diversity of a model's samples, on image features (harness.evaluation.features).

Two measures, each computed over the samples of one prompt and then averaged over prompts (prompts are
the unit, as in harness.stats):
- mean pairwise distance: the mean Euclidean distance between the features of two samples; in feature
  units, so compare arms only under the same features;
- Vendi score (Friedman and Dieng, 2023): exp of the Shannon entropy of the eigenvalues of K / n, with
  K the cosine-similarity matrix of the n samples: the effective number of distinct samples, from 1
  (all alike) to n (mutually orthogonal features).
Rewards that sharpen a distribution tend to collapse it; these numbers show that cost.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch

from miro.errors import MiroError


def mean_pairwise_distance(features: torch.Tensor) -> float:
    """Mean Euclidean distance over all pairs of rows of (n, D), n >= 2."""
    return float(torch.pdist(features.double()).mean())


def vendi_score(features: torch.Tensor) -> float:
    """exp(-sum_i l_i log l_i), l = eigenvalues of K / n, K_ij = cos(f_i, f_j)."""
    unit = features.double() / features.double().norm(dim=1, keepdim=True).clamp_min(1e-12)
    eigenvalues = torch.linalg.eigvalsh(unit @ unit.T / len(unit)).clamp_min(0)
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    return float(torch.exp(-(eigenvalues * eigenvalues.log()).sum()))


def per_prompt_diversity(features: torch.Tensor, prompt_ids: Sequence[Hashable]) -> dict[Hashable, dict[str, float]]:
    """prompt -> {"pairwise_distance", "vendi"} over that prompt's samples (prompts with >= 2 samples)."""
    if len(prompt_ids) != len(features):
        raise MiroError(f"{len(prompt_ids)} prompt ids for {len(features)} feature rows; give one id per image")
    rows: dict[Hashable, list[int]] = {}
    for row, prompt in enumerate(prompt_ids):
        rows.setdefault(prompt, []).append(row)
    if all(len(r) < 2 for r in rows.values()):
        raise MiroError("diversity needs at least 2 samples per prompt; generate with --samples 2 or more")
    return {prompt: {"pairwise_distance": mean_pairwise_distance(features[r]), "vendi": vendi_score(features[r])}
            for prompt, r in rows.items() if len(r) >= 2}
