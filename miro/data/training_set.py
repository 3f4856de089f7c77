"""The dataset the trainer consumes: image (or precomputed latent), caption and binned reward vector.

It joins three things made earlier: a source (folder, shards, or the shapes world), its annotation
parquet, and the bin edges saved beside it. Every item is
    {"image": float (C, H, W) in [-1, 1], or the unscaled VAE posterior mean when latents are precomputed,
     "caption": str, "rewards": float32 (R,) in [0, 1] in the order of `rewards`, "sample_id": int}
plus "latent_std" (to draw posterior samples) and "text_embedding" / "text_mask" when precomputed.

Which samples are kept: those annotated with status "ok" for every reward in `require_ok` (default: the
rewards the arm conditions on). Arms of one ablation should pass the same `require_ok` (e.g. every
annotated reward) so that they train on exactly the same samples. A sample every scorer failed on
(an unreadable image) is always dropped. The reasons for every exclusion are counted in `excluded`.
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from miro.data.annotate import annotation_fingerprint, read_annotation
from miro.data.precompute import Features
from miro.data.sources import ItemError, Source, as_source, fit_to
from miro.errors import MiroError, unknown_name_error
from miro.rewards.binning import DEFAULT_BINNING, BinEdges, BinningOptions, bins_beside


def _scorers_of(wide: pd.DataFrame) -> list[str]:
    return sorted(wide.attrs.get("scorers") or [c[: -len("__status")] for c in wide.columns if c.endswith("__status")])


def _check_names(names: Sequence[str], available: Sequence[str]) -> None:
    for name in names:
        if name not in available:
            raise unknown_name_error("reward", name, available)


def fit_bins(annotation: str | os.PathLike, rewards: Sequence[str], options: BinningOptions = DEFAULT_BINNING,
             path: str | os.PathLike | None = None) -> BinEdges:
    """The bin edges of `rewards`, stored under the annotation's name (<name>.bins.json) and shared by every run.

    The edges record the fingerprint of the annotation they were fitted on. While it is unchanged, edges
    already in the file are never changed and missing rewards are fitted on their ok scores (in sample_id
    order) and added; once the annotation changes (more shards, a merged column, a rescore) every reward
    of the file is refitted. Asking for other binning options than the file's is refused.
    """
    path = Path(path) if path is not None else bins_beside(annotation)
    fingerprint = annotation_fingerprint(annotation)
    existing = BinEdges.load(path) if path.is_file() else BinEdges({}, options, fingerprint)
    if existing.options != options:
        raise MiroError(f"{path} was fitted with {existing.options}, not {options}; use the same options or delete the file to refit (runs on one dataset must share bins)")
    if existing.fingerprint != fingerprint:  # the annotation changed: refit everything on it
        rewards, existing = sorted(set(rewards) | set(existing.rewards)), BinEdges({}, options, fingerprint)
    missing = [r for r in rewards if r not in existing.rewards]
    if not missing:
        return existing
    wide = read_annotation(annotation)
    _check_names(missing, _scorers_of(wide))
    scores = {r: wide.loc[wide[f"{r}__status"] == "ok", r].to_numpy() for r in missing}
    merged = BinEdges({**existing.rewards, **BinEdges.fit(scores, options).rewards}, options, fingerprint)
    merged.save(path)
    return merged


@dataclass(frozen=True)
class TensorData:
    """A whole dataset in memory. uint8 images map back to [-1, 1] as x / 127.5 - 1."""

    images: torch.Tensor  # (N, C, H, W) uint8 or float16 / float32
    captions: list[str]
    rewards: torch.Tensor  # (N, R) float32 in [0, 1]
    sample_ids: torch.Tensor  # (N,) int64
    reward_names: tuple[str, ...]


class RewardTrainingSet(Dataset):
    """Source + annotation + bins -> training items (see the module docstring)."""

    def __init__(
        self,
        source: Any,
        annotation: str | os.PathLike | pd.DataFrame,
        bins: BinEdges,
        rewards: Sequence[str],
        require_ok: Sequence[str] | None = None,
        resolution: int | None = None,
        features: str | os.PathLike | Features | None = None,
    ):
        self.source: Source = as_source(source)
        wide = annotation if isinstance(annotation, pd.DataFrame) else read_annotation(annotation)
        available = _scorers_of(wide)
        self.reward_names = tuple(rewards)
        require = tuple(self.reward_names if require_ok is None else require_ok)
        _check_names(self.reward_names + require, available)
        for name in self.reward_names:
            bins.get(name)  # refuses a reward without edges, before any work
        self.resolution = resolution
        self.features = Features(features) if isinstance(features, (str, os.PathLike)) else features

        index_of = {sid: i for i, sid in enumerate(self.source.sample_ids)}
        reasons = pd.Series("", index=wide.index, dtype=object)
        for name in reversed(require):  # the first failing required reward names the reason
            status = wide[f"{name}__status"]
            reasons = reasons.where(status == "ok", name + ": " + status)
        statuses = wide[[f"{n}__status" for n in available]]
        reasons = reasons.where(~(statuses == "failed").all(axis=1), "unreadable (every scorer failed)")
        reasons = reasons.where(wide["sample_id"].isin(index_of.keys()), "annotated but not in the source")
        if self.features is not None:
            features = self.features
            for kind in features.kinds:
                stored = wide["sample_id"].map(lambda sid, k=kind: features.has(int(sid), k))
                reasons = reasons.where((reasons != "") | stored, f"no precomputed {kind}")
        kept = wide[reasons == ""]
        self.excluded = Counter(reasons[reasons != ""])
        not_annotated = len(set(index_of) - set(wide["sample_id"].astype(int)))
        if not_annotated:
            self.excluded["not annotated"] = not_annotated
        if kept.empty:
            raise MiroError(f"no sample is left after exclusions ({dict(self.excluded)}); annotate the source with {', '.join(require)} first")
        self.sample_ids = kept["sample_id"].astype(int).tolist()
        self._index = [index_of[sid] for sid in self.sample_ids]
        columns = [bins.to_unit(name, kept[name].to_numpy()) for name in self.reward_names]
        self.rewards = torch.stack(columns, dim=1) if columns else torch.zeros(len(kept), 0)  # (N, R)

    def __len__(self) -> int:
        return len(self.sample_ids)

    def summary(self) -> str:
        reasons = ", ".join(f"{n} {r}" for r, n in self.excluded.most_common())
        return f"{len(self)} samples, rewards ({', '.join(self.reward_names)}); excluded {sum(self.excluded.values())}{': ' + reasons if reasons else ''}"

    def __getitem__(self, i: int) -> dict[str, Any]:
        sid = self.sample_ids[i]
        item = self.source.item(self._index[i])
        out: dict[str, Any] = {"caption": item.caption, "rewards": self.rewards[i], "sample_id": sid}
        stored = self.features.get(sid) if self.features else {}
        if "latent" in stored:
            out["image"] = stored.pop("latent")
        else:
            try:
                image = item.image()
            except ItemError as err:
                raise MiroError(f"sample {sid} was annotated but is now unreadable ({err}); re-run annotation on this source") from None
            out["image"] = (fit_to(image, self.resolution) if self.resolution else image) * 2 - 1
        out.update(stored)
        return out

    def to_tensors(self, dtype: torch.dtype = torch.uint8, progress: bool = True) -> TensorData:
        """Materialise every item (e.g. the 32 px shapes world) as stacked tensors for a fast in-memory loop."""
        if dtype not in (torch.uint8, torch.float16, torch.float32):
            raise MiroError(f"to_tensors dtype {dtype} is not allowed; use torch.uint8, torch.float16 or torch.float32")
        if dtype == torch.uint8 and self.features and "latent" in self.features.kinds:
            raise MiroError("latents cannot be stored as uint8; call to_tensors(torch.float16)")
        images, captions = [], []
        for i in tqdm(range(len(self)), unit="img", desc="to_tensors", disable=not progress):
            item = self[i]
            x = item["image"]
            images.append(((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8) if dtype == torch.uint8 else x.to(dtype))
            captions.append(item["caption"])
        return TensorData(torch.stack(images), captions, self.rewards.clone(), torch.tensor(self.sample_ids, dtype=torch.int64), self.reward_names)
