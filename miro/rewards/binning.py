"""Reward binning: raw reward scores -> the values in [0, 1] the network is conditioned on.

MIRO never shows raw scores to the network. Each reward's scores are cut into B bins estimated once on
the training data, and a score in bin k is shown as k / (B - 1). The edges are saved as JSON beside the
dataset (`BinEdges.save`) so training, sampling and evaluation use the very same bins.

The quantile computation is the released code's (nicolas-dufour/miro, `_compute_bins` in
data/text_wids_dataset.py), step for step:
  1. draw up to `max_samples` (100,000) scores: positions = random.Random(seed).sample(range(n), k), seed 42;
  2. edges = torch.quantile(torch.unique(float32 scores), torch.linspace(0, 1, B + 1));
  3. force the first edge to 0.0 and the last to 1.0, so the outer bins take every score of [0, 1];
  4. value = max(0, torch.bucketize(score, edges) - 1) / (B - 1), i.e. k / (B - 1) for k = 0 .. B - 1.
If there are fewer than B + 1 distinct scores, the released code (and this one) falls back to B equal-width
bins over [min, max]; the fallback is recorded in `RewardBins.note`.

Scores outside [0, 1]. The released code assumes pre-scaled scores in [0, 1]; fed anything else, forcing the
edges to 0 and 1 breaks their order and a score above 1 lands in "bin B", i.e. value B / (B - 1) > 1. Here
the first edge is min(0, lowest quantile) and the last is max(1, highest quantile), and the bin index is
clamped to [0, B - 1]. For scores in [0, 1] this is exactly the released computation; for others it keeps
the edges ordered, sends a score below the first edge to bin 0 and one above the last edge to bin B - 1,
so values always lie in [0, 1]. Raw (unscaled) rewards can therefore be binned directly.

Edge ties. Edges are made strictly increasing with torch.unique (as released). If that removes an edge
(only in degenerate data), B becomes len(edges) - 1 so the top bin still maps to 1.0; the released code
would keep the requested B and never reach 1.0. A reward with a single distinct value is refused.
"""
from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from miro.errors import MiroError, did_you_mean
from miro.files import write_text_atomic

STRATEGIES = ("quantile", "uniform", "refined_quantile")
BINS_SUFFIX = ".bins.json"  # <annotation name>.bins.json beside the annotation parquet
FORMAT = "miro.bin_edges/1"

ArrayLike = torch.Tensor | np.ndarray | Sequence[float]


@dataclass(frozen=True)
class BinningOptions:
    """How to estimate the edges.

    strategy: `quantile` (equal-population bins, the paper and released default), `uniform` (B equal-width
    bins over the observed [min, max] of the sample, as released; the outer edges then stretch to cover
    [0, 1]) or `refined_quantile` (the last `refine_last` of B quantile bins each cut into `refine_factor`
    quantile bins, giving B - refine_last + refine_last * refine_factor bins; the paper's ablation
    re-bins the last 8 of 64 and does not state the factor, so 2 is our default).
    max_samples / seed: the calibration subsample (released: 100,000 and 42).
    """

    strategy: str = "quantile"
    bins: int = 64
    max_samples: int = 100_000
    seed: int = 42
    refine_last: int = 8
    refine_factor: int = 2

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise MiroError(f'binning strategy "{self.strategy}" is not allowed{did_you_mean(self.strategy, STRATEGIES)}; choose one of {", ".join(STRATEGIES)}')
        if self.bins < 2:
            raise MiroError(f"binning bins = {self.bins} must be >= 2")
        if self.max_samples < 2:
            raise MiroError(f"binning max_samples = {self.max_samples} must be >= 2")
        if self.strategy == "refined_quantile" and not (1 <= self.refine_last <= self.bins and self.refine_factor >= 1):
            raise MiroError(f"binning refine_last = {self.refine_last} must lie in [1, bins = {self.bins}] and refine_factor = {self.refine_factor} must be >= 1")

    @property
    def total_bins(self) -> int:
        """Bins after refinement (B for quantile and uniform)."""
        if self.strategy == "refined_quantile":
            return self.bins - self.refine_last + self.refine_last * self.refine_factor
        return self.bins


DEFAULT_BINNING = BinningOptions()  # the released recipe: 64 quantile bins from up to 100,000 scores, seed 42


@dataclass(frozen=True, eq=False)
class RewardBins:
    """The edges of one reward: a (B + 1,) float32 tensor, strictly increasing."""

    reward: str
    strategy: str
    edges: torch.Tensor
    num_scores: int  # how many scores the edges were estimated from
    note: str = ""  # fallbacks taken while fitting, empty when none

    @property
    def bins(self) -> int:
        return len(self.edges) - 1

    def to_index(self, scores: ArrayLike) -> torch.Tensor:
        """Bin index k in [0, B - 1] of each score (int64)."""
        values = _as_float32(self.reward, scores)
        # released: max(0, bucketize(score, edges) - 1); the upper clamp only acts on scores above the last edge
        return (torch.bucketize(values, self.edges) - 1).clamp(0, self.bins - 1)

    def to_unit(self, scores: ArrayLike) -> torch.Tensor:
        """k / (B - 1) in [0, 1] (float32, computed in float64 like the released Python division)."""
        return (self.to_index(scores).double() / (self.bins - 1)).float()


@dataclass(frozen=True, eq=False)
class BinEdges:
    """Bin edges for several rewards, fitted once and saved beside the dataset."""

    rewards: Mapping[str, RewardBins]
    options: BinningOptions = DEFAULT_BINNING
    fingerprint: str = ""  # of the annotation the edges were fitted on ("" when unknown)

    @classmethod
    def fit(cls, scores: Mapping[str, ArrayLike], options: BinningOptions = DEFAULT_BINNING) -> BinEdges:
        """Estimate edges for every reward in `scores` (reward name -> all its scores, in dataset order)."""
        return cls({name: fit_reward(name, values, options) for name, values in scores.items()}, options)

    @property
    def names(self) -> list[str]:
        return sorted(self.rewards)

    def get(self, reward: str) -> RewardBins:
        """The bins of one reward, or a one-line error saying how to get them."""
        if reward not in self.rewards:
            have = ", ".join(self.names) or "none"
            raise MiroError(
                f'reward "{reward}" has no bin edges{did_you_mean(reward, self.rewards)} (have: {have}); '
                "annotate the dataset with this reward and refit with BinEdges.fit, or drop it from the reward list"
            )
        return self.rewards[reward]

    def to_unit(self, reward: str, scores: ArrayLike) -> torch.Tensor:
        return self.get(reward).to_unit(scores)

    def to_index(self, reward: str, scores: ArrayLike) -> torch.Tensor:
        return self.get(reward).to_index(scores)

    def save(self, path: str | os.PathLike) -> Path:
        """Write JSON atomically (tmp file + rename), so a reader never sees half a file."""
        path = Path(path)
        payload = {
            "format": FORMAT,
            "options": asdict(self.options),
            "fingerprint": self.fingerprint,
            "rewards": {
                name: {"strategy": b.strategy, "bins": b.bins, "num_scores": b.num_scores, "note": b.note,
                       "edges": [float(e) for e in b.edges]}
                for name, b in sorted(self.rewards.items())
            },
        }
        write_text_atomic(path, json.dumps(payload, indent=1))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> BinEdges:
        path = Path(path)
        if not path.is_file():
            raise MiroError(f"bin edges file {path} does not exist; fit edges with BinEdges.fit(...).save({path.name!r}) beside the annotation")
        try:
            payload = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise MiroError(f"bin edges file {path} is not valid JSON ({err}); delete it and refit") from None
        if payload.get("format") != FORMAT:
            raise MiroError(f'bin edges file {path} has format {payload.get("format")!r}, expected "{FORMAT}"; refit and save it again')
        rewards = {}
        for name, entry in payload["rewards"].items():
            edges = torch.tensor(entry["edges"], dtype=torch.float32)
            if len(edges) < 3 or not bool((edges[1:] > edges[:-1]).all()):
                raise MiroError(f'bin edges file {path}: reward "{name}" needs >= 3 strictly increasing edges; refit it')
            rewards[name] = RewardBins(name, entry["strategy"], edges, int(entry["num_scores"]), entry.get("note", ""))
        return cls(rewards, BinningOptions(**payload["options"]), payload.get("fingerprint", ""))


def _as_float32(reward: str, scores: ArrayLike) -> torch.Tensor:
    """Scores as a float32 tensor; NaN or infinite scores are refused (they have no bin)."""
    values = scores if isinstance(scores, torch.Tensor) else torch.from_numpy(np.asarray(scores, dtype=np.float32))
    values = values.detach().to("cpu", torch.float32)
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        first = int(bad.flatten().nonzero()[0])
        raise MiroError(
            f'reward "{reward}": {int(bad.sum())} NaN/inf scores (first at position {first}); '
            "exclude those samples first (annotation marks them with status \"nan\")"
        )
    return values


def _quantile_positions(options: BinningOptions) -> torch.Tensor:
    """Quantile levels of the edges: i / B, with the last `refine_last` bins subdivided for refined_quantile."""
    if options.strategy != "refined_quantile":
        return torch.linspace(0, 1, options.bins + 1)
    b, n, f = options.bins, options.refine_last, options.refine_factor
    start = (b - n) / b
    levels = [i / b for i in range(b - n + 1)]
    levels += [start + i * (1.0 - start) / (n * f) for i in range(1, n * f + 1)]
    return torch.tensor(levels, dtype=torch.float32)


def fit_reward(reward: str, scores: ArrayLike, options: BinningOptions = DEFAULT_BINNING) -> RewardBins:
    """Edges of one reward, the released way (see the module docstring)."""
    values = _as_float32(reward, scores).flatten()
    if len(values) == 0:
        raise MiroError(f'reward "{reward}" has no scores to fit bins on; annotate the dataset first')
    take = min(options.max_samples, len(values))
    positions = random.Random(options.seed).sample(range(len(values)), take)
    unique = torch.unique(values[torch.tensor(positions, dtype=torch.long)])
    if len(unique) < 2:
        raise MiroError(f'reward "{reward}" has a single value ({float(unique[0])}) in {take} scores; it cannot be binned, drop it from the reward list')
    total = options.total_bins
    note = ""
    if options.strategy == "uniform" or len(unique) < total + 1:
        if options.strategy != "uniform":
            note = f"uniform fallback: {len(unique)} distinct scores < {total + 1} edges"
        edges = torch.linspace(unique.min().item(), unique.max().item(), total + 1)
    else:
        edges = torch.quantile(unique, _quantile_positions(options))
    edges[0] = min(0.0, edges[0].item())
    edges[-1] = max(1.0, edges[-1].item())
    edges = torch.unique(edges)
    if len(edges) - 1 < total:
        note = "; ".join(filter(None, [note, f"{total + 1 - len(edges)} tied edges merged: {len(edges) - 1} bins"]))
    if len(edges) < 3:
        raise MiroError(f'reward "{reward}": only {len(edges) - 1} bin after merging tied edges; it cannot be binned, drop it from the reward list')
    return RewardBins(reward, options.strategy, edges, take, note)


def bins_beside(annotation: str | os.PathLike) -> Path:
    """The bin edges of an annotation: <name>.bins.json beside <name>.parquet (two annotations in one
    folder keep their own bins)."""
    path = Path(annotation)
    return path.with_name(path.stem + BINS_SUFFIX)

