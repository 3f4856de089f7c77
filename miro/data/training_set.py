"""The datasets the trainer consumes: image (or precomputed latent), caption and binned reward vector.

Each joins things made earlier: the data (a source of images, or a feature store of precomputed latents and
caption features), its annotation parquet, and the bin edges saved beside it. Every item is
    {"image": float (C, H, W) in [-1, 1], or the unscaled VAE posterior mean (float16) when latents are precomputed,
     "caption": str, "rewards": float32 (R,) in [0, 1] in the order of `rewards`, "sample_id": int}
plus "latent_std" (to draw posterior samples) and "text_embedding" (tokens, D) when precomputed.

Which samples are kept: those annotated with status "ok" for every reward in `require_ok` (default: the
rewards the arm conditions on). Arms of one ablation should pass the same `require_ok` (e.g. every
annotated reward) so that they train on exactly the same samples. A sample every scorer failed on
(an unreadable image) is always dropped. The reasons for every exclusion are counted in `excluded`.

`RewardTrainingSet` reads images from a source (small data, or encoding on the fly). `FeatureTrainingSet` reads a
feature store at any size: the join of annotation, bins and store is computed once per (store, annotation,
bins, rewards, kept samples) into a training index beside the store (row numbers, reward values and captions
in memory-mappable files), which every rank then opens in O(1).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections import Counter
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch.utils.data import Dataset

from miro.data.annotate import annotation_fingerprint, read_annotation
from miro.data.feature_store import FeatureStore, Record
from miro.data.sources import DatasetSource, ItemError, Source, as_source, fit_to
from miro.errors import MiroError, unknown_name_error
from miro.files import atomic_path, write_json_atomic
from miro.rewards.binning import DEFAULT_BINNING, BinEdges, BinningOptions, bins_beside

TRAINING_INDEXES = "training"  # a feature store's folder of training indexes


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


def exclusion_reasons(wide: pd.DataFrame, require: Sequence[str], available: Sequence[str]) -> pd.Series:
    """Per annotated sample, why it is left out ("" if kept): the first failing required reward, or an unreadable image."""
    reasons = pd.Series("", index=wide.index, dtype=object)
    for name in reversed(require):  # the first failing required reward names the reason
        status = wide[f"{name}__status"]
        reasons = reasons.where(status == "ok", name + ": " + status)
    statuses = wide[[f"{n}__status" for n in available]]
    return reasons.where(~(statuses == "failed").all(axis=1), "unreadable (every scorer failed)")


def _summary(n: int, rewards: Sequence[str], excluded: Counter) -> str:
    reasons = ", ".join(f"{count} {reason}" for reason, count in excluded.most_common())
    return f"{n} samples, rewards ({', '.join(rewards)}); excluded {sum(excluded.values())}{': ' + reasons if reasons else ''}"


def _checked_rewards(wide: pd.DataFrame, bins: BinEdges, rewards: Sequence[str], require_ok: Sequence[str] | None) -> tuple[tuple[str, ...], list[str]]:
    """The rewards and the required ones, refused when not annotated or without bin edges, and every annotated scorer."""
    available = _scorers_of(wide)
    require = tuple(rewards if require_ok is None else require_ok)
    _check_names(tuple(rewards) + require, available)
    for name in rewards:
        bins.get(name)  # refuses a reward without edges, before any work
    return require, available


class RewardTrainingSet(Dataset):
    """Source of images + annotation + bins -> training items (see the module docstring).

    With `features` (a store without latents, e.g. T5 features for a pixel-space run, or one with them) the
    stored parts of each item are read from the store and the rest from the source.
    """

    def __init__(
        self,
        source: Any,
        annotation: str | os.PathLike | pd.DataFrame,
        bins: BinEdges,
        rewards: Sequence[str],
        require_ok: Sequence[str] | None = None,
        resolution: int | None = None,
        features: str | os.PathLike | FeatureStore | None = None,
    ):
        self.source: Source = as_source(source)
        wide = annotation if isinstance(annotation, pd.DataFrame) else read_annotation(annotation)
        self.reward_names = tuple(rewards)
        require, available = _checked_rewards(wide, bins, self.reward_names, require_ok)
        self.resolution = resolution
        self.features = FeatureStore(features) if isinstance(features, (str, os.PathLike)) else features
        self.reads_files = self.features is not None or not isinstance(self.source, DatasetSource)  # else held in memory
        index_of = {sid: i for i, sid in enumerate(self.source.sample_ids)}
        reasons = exclusion_reasons(wide, require, available)
        reasons = reasons.where(wide["sample_id"].isin(index_of.keys()), "annotated but not in the source")
        if self.features is not None:
            stored = self.features.rows_of(wide["sample_id"].to_numpy(dtype=np.int64)) >= 0
            reasons = reasons.where((reasons != "") | stored, "not in the feature store (unreadable when precomputed, or not precomputed)")
        kept = wide[reasons == ""]
        self.excluded = Counter(reasons[reasons != ""])
        not_annotated = len(set(index_of) - set(wide["sample_id"].astype(int)))
        if not_annotated:
            self.excluded["not annotated"] = not_annotated
        if kept.empty:
            raise MiroError(f"no sample is left after exclusions ({dict(self.excluded)}); annotate the source with {', '.join(require)} first")
        self.sample_ids = kept["sample_id"].astype(int).tolist()
        self._index = [index_of[sid] for sid in self.sample_ids]
        self._rows = self.features.rows_of(np.array(self.sample_ids, dtype=np.int64)) if self.features is not None else None
        columns = [bins.to_unit(name, kept[name].to_numpy()) for name in self.reward_names]
        self.rewards = torch.stack(columns, dim=1) if columns else torch.zeros(len(kept), 0)  # (N, R)

    def __len__(self) -> int:
        return len(self.sample_ids)

    def summary(self) -> str:
        return _summary(len(self), self.reward_names, self.excluded)

    def __getitem__(self, i: int) -> dict[str, Any]:
        sid = self.sample_ids[i]
        item = self.source.item(self._index[i])
        out: dict[str, Any] = {"caption": item.caption, "rewards": self.rewards[i], "sample_id": sid}
        if self._rows is not None:
            out.update(stored_parts(self.features.read(int(self._rows[i]))))  # type: ignore[union-attr]
        if "image" not in out:
            try:
                image = item.image()
            except ItemError as err:
                raise MiroError(f"sample {sid} was annotated but is now unreadable ({err}); re-run annotation on this source") from None
            out["image"] = (fit_to(image, self.resolution) if self.resolution else image) * 2 - 1
        return out


def stored_parts(record: Record) -> dict[str, torch.Tensor]:
    """A store record as item fields: image (the posterior mean) and latent_std (C, h, w), text_embedding (tokens, D); float16."""
    out = {}
    if record.latent is not None:
        out["image"], out["latent_std"] = record.latent[0], record.latent[1]
    if record.text is not None:
        out["text_embedding"] = record.text
    return out


# --------------------------------------------------------------------------------------------------
# training on a feature store
# --------------------------------------------------------------------------------------------------
@contextmanager
def _locked(path: Path):  # type: ignore[no-untyped-def]
    """An exclusive lock on `path` (released when the holder exits, even when killed)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def training_index_key(store: FeatureStore, annotation: Path, bins: BinEdges, rewards: Sequence[str], require: Sequence[str]) -> str:
    """What a training index is computed from: the store's commit, the annotation file (path, size, mtime, inode),
    the bin edges of the rewards, the rewards and the required rewards."""
    stat = annotation.stat()
    payload = {"store": (store.path / "store.json").read_text(), "annotation": [str(annotation.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino],
               "bins": {r: bins.get(r).edges.tolist() for r in rewards}, "rewards": list(rewards), "require": list(require)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def build_training_index(folder: Path, store: FeatureStore, annotation: Path, bins: BinEdges, rewards: Sequence[str],
                         require_ok: Sequence[str] | None) -> None:
    """Join the annotation, the bins and the store into `folder`: rows.npy (store rows of the kept samples),
    rewards.npy (N, R) float32, captions.arrow and meta.json (counts of what was left out and why)."""
    wide = read_annotation(annotation, scorers=rewards)
    require, available = _checked_rewards(wide, bins, rewards, require_ok)
    ids = wide["sample_id"].to_numpy(dtype=np.int64)
    rows = store.rows_of(ids)
    reasons = exclusion_reasons(wide, require, available)
    reasons = reasons.where((reasons != "") | (rows >= 0), "not in the feature store (unreadable when precomputed, or not precomputed)")
    kept = (reasons == "").to_numpy()
    excluded = Counter(reasons[reasons != ""])
    not_annotated = len(store) - int(np.isin(store.sample_ids, ids, assume_unique=True).sum())
    if not_annotated:
        excluded["in the feature store but not annotated"] = not_annotated
    if not kept.any():
        raise MiroError(f"no sample is left after exclusions ({dict(excluded)}); annotate the source with {', '.join(require)} "
                        f"and precompute it into {store.path}")
    values = [bins.to_unit(name, wide.loc[kept, name].to_numpy()).numpy() for name in rewards]
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        np.save(tmp / "rows.npy", rows[kept])
        np.save(tmp / "rewards.npy", np.stack(values, axis=1).astype(np.float32) if values else np.zeros((int(kept.sum()), 0), np.float32))
        with pa.OSFile(str(tmp / "captions.arrow"), "wb") as sink, pa.ipc.new_file(sink, pa.schema([("caption", pa.string())])) as writer:
            writer.write_table(pa.table({"caption": wide.loc[kept, "caption"].astype(str).tolist()}))
        write_json_atomic(tmp / "meta.json", {"samples": int(kept.sum()), "rewards": list(rewards), "excluded": dict(excluded)})


class FeatureTrainingSet(Dataset):
    """Feature store with latents + annotation + bins -> training items, opened in O(1) from a training index (module
    docstring); a store without text takes the captions from the annotation, for a live text encoder.

    The index is built by the first process that needs it (others wait on a lock), atomically, under
    <store>/training/<key>/. `__getitems__` reads a batch (the DataLoader's batched fetch).
    """

    reads_files = True

    def __init__(self, store: str | os.PathLike | FeatureStore, annotation: str | os.PathLike, bins: BinEdges,
                 rewards: Sequence[str], require_ok: Sequence[str] | None = None):
        self.features = store if isinstance(store, FeatureStore) else FeatureStore(store)
        if self.features.layout.latent_shape is None:
            raise MiroError(f"{self.features.path} holds no latents; train from the images with it (RewardTrainingSet(source, ..., features=...))")
        self.reward_names = tuple(rewards)
        annotation = Path(annotation)
        require = tuple(self.reward_names if require_ok is None else require_ok)
        folder = self.features.path / TRAINING_INDEXES / training_index_key(self.features, annotation, bins, self.reward_names, require)
        if not (folder / "meta.json").is_file():
            folder.parent.mkdir(exist_ok=True)
            with _locked(folder.with_suffix(".lock")):
                if not (folder / "meta.json").is_file():
                    build_training_index(folder, self.features, annotation, bins, self.reward_names, require_ok)
        self.index = folder
        meta = json.loads((folder / "meta.json").read_text())
        self.excluded, self._n = Counter(meta["excluded"]), int(meta["samples"])
        self._rows: np.ndarray | None = None
        self._rewards: np.ndarray | None = None
        self._captions: pa.ChunkedArray | None = None

    def __getstate__(self) -> dict[str, Any]:  # workers map the files themselves
        return {**self.__dict__, "_rows": None, "_rewards": None, "_captions": None}

    def mapped(self) -> tuple[np.ndarray, np.ndarray, pa.ChunkedArray]:
        """The training index, memory-mapped in this process: store rows (N,), reward values (N, R), captions (N,)."""
        if self._rows is None:
            self._rows = np.load(self.index / "rows.npy", mmap_mode="r")
            self._rewards = np.load(self.index / "rewards.npy", mmap_mode="r")
            self._captions = pa.ipc.open_file(pa.memory_map(str(self.index / "captions.arrow"))).read_all()["caption"]
        return self._rows, self._rewards, self._captions  # type: ignore[return-value]

    def __len__(self) -> int:
        return self._n

    def summary(self) -> str:
        return _summary(len(self), self.reward_names, self.excluded)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """A batch of items: the index entries, reward values and captions of the batch fetched at once."""
        rows, rewards, captions = self.mapped()
        at = np.asarray(indices, dtype=np.int64)
        values = torch.from_numpy(np.array(rewards[at]))  # (B, R)
        texts = captions.take(pa.array(at)).to_pylist()
        return [{"caption": text, "rewards": values[k], "sample_id": record.sample_id, **stored_parts(record)}
                for k, (text, record) in enumerate(zip(texts, self.features.read_rows(rows[at]), strict=True))]
