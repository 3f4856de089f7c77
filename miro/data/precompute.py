"""Precompute VAE latents and T5 caption embeddings once, so training never runs the frozen encoders.

Latents: a diffusers AutoencoderKL from a local folder (the SDXL VAE at real scale). Images are fitted to
`resolution` (shorter side resized, center crop), mapped to [-1, 1] and encoded; the posterior mean and std
are stored unscaled with the VAE's scaling_factor (and shift_factor, when its config has one) in the
metadata; readers return them unscaled and the trainer normalises them as the run's config says (the
VAE's factor or the released per-channel statistics, posterior mean or sample).
Text: a transformers T5EncoderModel and its tokenizer from one local folder; captions are padded /
truncated to `max_tokens`; the last hidden state (L, D) and the attention mask (L,) are stored.

Store: a directory of immutable part files <out>/part-*.parquet, one row per (sample_id, kind) with
kind "latent" or "text", a status ("ok" / "failed"), the error, and the arrays as an .npz payload. Parts
are written atomically every `flush_every` samples and when a run stops, never merged (the payloads can
be far larger than memory), and indexed on read. Rerunning skips the pairs already stored; shards of a
SLURM array write into the same directory side by side. Each part records the encoders' fingerprints;
adding to a store made with other encoders or settings is refused.

Beside the parts: null_text.npz, the T5 embedding of the null caption "" (caption dropout trains on it,
so a trainer reading stored text never loads T5), and latent-stats-<shard>-of-<count>.json, per-channel
sum, sum of squares and count of the posterior means of one shard; when every shard has them, `latent_statistics`
adds them up into latent_stats.json, the dataset's per-channel mean and std (for a per-channel latent
normalisation).

Fingerprint of an encoder: its config (minus paths and library versions), the tokenizer files' bytes,
and for each weights file its name, size and the sha256 of its first and last MiB (hashing whole
multi-GB weights on every resume would cost more than it protects).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from miro.data.annotate import read_meta, write_parquet_atomic
from miro.data.sources import ItemError, Source, SourceItem, as_source, fit_to
from miro.errors import MiroError
from miro.latents import VaeSpace
from miro.manifest import write_json_atomic
from miro.text import T5TextEncoder, TextEncoder

FORMAT = "miro.features/1"
META_KEY = b"miro.features"
KINDS = ("latent", "text")
NULL_TEXT = "null_text.npz"
LATENT_STATS = "latent_stats.json"  # per-channel mean / std of the dataset's posterior means
ROW_GROUP = 64  # rows per parquet row group: a random read loads one group
_IGNORED_CONFIG_KEYS = {"_name_or_path", "_diffusers_version", "transformers_version", "_commit_hash", "architectures", "torch_dtype"}


@dataclass(frozen=True)
class PrecomputeOptions:
    """Which encoders to run (an empty path skips that kind) and how."""

    vae_path: str = ""
    text_path: str = ""
    resolution: int = 256
    max_tokens: int = 77
    batch_size: int = 16
    device: str = "cpu"
    dtype: str = "float32"  # compute dtype of the encoders
    store_dtype: str = "float16"  # dtype of the stored arrays

    def __post_init__(self) -> None:
        if not (self.vae_path or self.text_path):
            raise MiroError("precompute has nothing to do: set vae_path (latents) and/or text_path (T5 embeddings)")
        for name in ("resolution", "max_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise MiroError(f"precompute {name} = {getattr(self, name)} must be >= 1")
        for name in ("dtype", "store_dtype"):
            if getattr(self, name) not in ("float32", "float16", "bfloat16"):
                raise MiroError(f'precompute {name} = "{getattr(self, name)}" must be float32, float16 or bfloat16')
        if self.store_dtype == "bfloat16":
            raise MiroError('precompute store_dtype = "bfloat16" cannot be saved as .npy; use float16 or float32')


def _file_fingerprint(folder: Path) -> dict[str, Any]:
    """Config (minus volatile keys), tokenizer bytes, and weights identified by size and head/tail hashes."""
    record: dict[str, Any] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        if path.name == "config.json":
            record[path.name] = {k: v for k, v in json.loads(path.read_text()).items() if k not in _IGNORED_CONFIG_KEYS}
        elif path.suffix in (".json", ".model", ".txt"):
            record[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.suffix in (".safetensors", ".bin", ".pt"):
            size = path.stat().st_size
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                digest.update(f.read(1 << 20))
                f.seek(max(0, size - (1 << 20)))
                digest.update(f.read(1 << 20))
            record[path.name] = {"size": size, "head_tail_sha256": digest.hexdigest()}
    return record


def _fingerprint(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _local_folder(path: str, what: str) -> Path:
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise MiroError(f"{what} folder {folder} has no config.json; point it at a local folder saved with save_pretrained")
    return folder


def load_vae(path: str, device: str = "cpu", dtype: str = "float32") -> VaeSpace:
    """The latent space of a local AutoencoderKL folder (the same loader training uses)."""
    return VaeSpace(str(_local_folder(path, "VAE")), device=device, dtype=getattr(torch, dtype))


def load_text_encoder(path: str, max_tokens: int, device: str = "cpu", dtype: str = "float32") -> T5TextEncoder:
    """The T5 encoder of a local folder (the same loader training uses)."""
    return T5TextEncoder(str(_local_folder(path, "T5")), max_tokens, device, getattr(torch, dtype))


def encode_images(vae: VaeSpace, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (B, 3, H, W) in [0, 1] -> unscaled posterior (mean, std), each (B, C, H/f, W/f) float32."""
    mean, std = vae.posterior(images * 2 - 1)
    return mean.cpu(), std.cpu()


def encode_captions(encoder: T5TextEncoder, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Captions -> T5 token embeddings (B, L, D) float32 and attention mask (B, L) bool, L = max_tokens."""
    hidden, mask = encoder.encode(captions)
    return hidden.cpu(), mask.cpu()


def _npz(arrays: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _encoder_meta(options: PrecomputeOptions, vae: VaeSpace | None) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if options.vae_path:
        settings = {"resolution": options.resolution, "dtype": options.dtype, "store_dtype": options.store_dtype}
        files = _file_fingerprint(Path(options.vae_path))
        meta["latent"] = {"fingerprint": _fingerprint({"files": files, **settings}), "path": options.vae_path, **settings,
                          "scaling_factor": vae.scaling_factor if vae else 0.0, "shift_factor": vae.shift_factor if vae else 0.0}
    if options.text_path:
        settings = {"max_tokens": options.max_tokens, "dtype": options.dtype, "store_dtype": options.store_dtype}
        files = _file_fingerprint(Path(options.text_path))
        meta["text"] = {"fingerprint": _fingerprint({"files": files, **settings}), "path": options.text_path, **settings}
    return meta


@dataclass
class PrecomputeReport:
    """What one precompute() call did."""

    path: Path
    samples: int = 0
    skipped: int = 0
    failed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.samples / self.seconds if self.seconds > 0 else 0.0
        return (f"precomputed {self.samples} samples ({self.skipped} already done) -> {self.path} in {self.seconds:.1f} s "
                f"({rate:.1f} samples/s); failed: latent {self.failed['latent']}, text {self.failed['text']}")


def _row(item: SourceItem, kind: str, status: str, error: str = "", payload: bytes = b"") -> dict[str, Any]:
    return {"sample_id": item.sample_id, "kind": kind, "status": status, "error": error, "payload": payload}


def _latent_rows(items: list[SourceItem], options: PrecomputeOptions, vae: VaeSpace) -> list[dict[str, Any]]:
    """Latent rows of the items; an unreadable image fails its own row only."""
    store = getattr(np, options.store_dtype)
    rows, ready, images = [], [], []
    for it in items:
        try:
            images.append(fit_to(it.image(), options.resolution))
            ready.append(it)
        except ItemError as err:
            rows.append(_row(it, "latent", "failed", str(err)))
    if ready:
        mean, std = encode_images(vae, torch.stack(images))
        rows += [_row(it, "latent", "ok", payload=_npz({"latent_mean": m.numpy().astype(store), "latent_std": s.numpy().astype(store)}))
                 for it, m, s in zip(ready, mean, std)]
    return rows


def _text_rows(items: list[SourceItem], options: PrecomputeOptions, encoder: T5TextEncoder) -> list[dict[str, Any]]:
    """Caption-embedding rows of the items; a sample that could not be read at all fails its row."""
    store = getattr(np, options.store_dtype)
    rows = [_row(it, "text", "failed", it.error) for it in items if it.error]
    ready = [it for it in items if not it.error]
    if ready:
        hidden, mask = encode_captions(encoder, [it.caption for it in ready])
        rows += [_row(it, "text", "ok", payload=_npz({"text_embedding": h.numpy().astype(store), "text_mask": m.numpy()}))
                 for it, h, m in zip(ready, hidden, mask)]
    return rows


def _stored(out: Path, meta: Mapping[str, Any]) -> dict[str, set[int]]:
    """(sample ids done) per kind being computed; refuses parts made with other encoders or settings."""
    done: dict[str, set[int]] = {kind: set() for kind in meta}
    for path in sorted(out.glob("part-*.parquet")):
        recorded = read_meta(path, META_KEY).get("encoders", {})
        for kind in meta.keys() & recorded.keys():
            if recorded[kind]["fingerprint"] != meta[kind]["fingerprint"]:
                raise MiroError(
                    f"{path} holds {kind} features from another encoder or settings (fingerprint {recorded[kind]['fingerprint']}, "
                    f"now {meta[kind]['fingerprint']}); write to a new directory or delete the old one"
                )
        table = pq.read_table(path, columns=["sample_id", "kind"])
        for sid, kind in zip(table["sample_id"].to_pylist(), table["kind"].to_pylist()):
            if kind in done:
                done[kind].add(sid)
    return done


def precompute(
    source: Any,
    out_dir: str | os.PathLike,
    options: PrecomputeOptions,
    shard_index: int = 0,
    shard_count: int = 1,
    progress: bool = True,
    flush_every: int = 1024,
) -> PrecomputeReport:
    """Encode the latents and/or caption embeddings of one shard's samples into `out_dir`, skipping stored ones."""
    if not 0 <= shard_index < shard_count:
        raise MiroError(f"shard_index = {shard_index} must lie in [0, shard_count = {shard_count})")
    src: Source = as_source(source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vae = load_vae(options.vae_path, options.device, options.dtype) if options.vae_path else None
    text = load_text_encoder(options.text_path, options.max_tokens, options.device, options.dtype) if options.text_path else None
    encoders = _encoder_meta(options, vae)
    done = _stored(out, encoders)
    in_shard = [i for i, sid in enumerate(src.sample_ids) if sid % shard_count == shard_index]
    todo = [i for i in in_shard if any(src.sample_ids[i] not in ids for ids in done.values())]
    report = PrecomputeReport(out, samples=len(todo), skipped=len(in_shard) - len(todo))
    meta = {"format": FORMAT, "encoders": encoders, "shard": [shard_index, shard_count]}
    start, pending = time.perf_counter(), 0
    buffer: list[dict[str, Any]] = []

    def flush() -> None:
        name = f"part-{shard_index:05d}-{os.getpid()}-{time.time_ns()}.parquet"
        write_parquet_atomic(pa.Table.from_pylist(buffer), out / name, META_KEY, meta, row_group_size=ROW_GROUP)

    bar = tqdm(total=len(todo), unit="img", desc=f"precompute {out.name}", disable=not progress)
    try:
        for first in range(0, len(todo), options.batch_size):
            chunk = todo[first:first + options.batch_size]
            items = [src.item(i) for i in chunk]
            rows = []
            if vae is not None:
                rows += _latent_rows([it for it in items if it.sample_id not in done["latent"]], options, vae)
            if text is not None:
                rows += _text_rows([it for it in items if it.sample_id not in done["text"]], options, text)
            buffer += rows
            for r in rows:
                report.failed[r["kind"]] += r["status"] == "failed"
            pending += len(chunk)
            bar.update(len(chunk))
            if pending >= flush_every:
                flush()
                buffer, pending = [], 0
    finally:
        bar.close()
        if buffer:
            flush()
    if text is not None and not (out / NULL_TEXT).is_file():
        hidden, mask = encode_captions(text, [""])
        _write_npz(out / NULL_TEXT, {"text_embedding": hidden[0].numpy().astype(getattr(np, options.store_dtype)),
                                     "text_mask": mask[0].numpy(), "fingerprint": np.array(encoders["text"]["fingerprint"])})
    if vae is not None:
        _write_shard_stats(out, shard_index, shard_count)
    report.seconds = time.perf_counter() - start
    if progress:
        tqdm.write(report.line(), file=sys.stderr)  # stdout stays free for machine-readable output
    return report


def _write_npz(path: Path, arrays: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(_npz(arrays))
    os.replace(tmp, path)


def _write_shard_stats(out: Path, shard_index: int, shard_count: int) -> None:
    """Per-channel sum, sum of squares and count of this shard's stored posterior means; once every shard
    has its sums, the dataset's per-channel mean and std go to latent_stats.json."""
    sums: list[np.ndarray] = []
    for path in sorted(out.glob(f"part-{shard_index:05d}-*.parquet")):
        table = pq.read_table(path, columns=["kind", "status", "payload"])
        for kind, status, payload in zip(*(table[c].to_pylist() for c in ("kind", "status", "payload"))):
            if kind == "latent" and status == "ok":
                with np.load(io.BytesIO(payload)) as arrays:
                    flat = arrays["latent_mean"].astype(np.float64).reshape(arrays["latent_mean"].shape[0], -1)  # (C, h*w)
                sums.append(np.stack([flat.sum(1), (flat ** 2).sum(1), np.full(len(flat), flat.shape[1])]))
    if not sums:
        return
    total = np.sum(sums, axis=0)  # (3, C): sum, sum of squares, count
    write_json_atomic(out / f"latent-stats-{shard_index:05d}-of-{shard_count:05d}.json",
                      {"sum": total[0].tolist(), "sum_squares": total[1].tolist(), "count": int(total[2][0])})
    if len(list(out.glob(f"latent-stats-*-of-{shard_count:05d}.json"))) == shard_count:
        write_json_atomic(out / LATENT_STATS, latent_statistics(out))


def latent_statistics(path: str | os.PathLike) -> dict[str, Any]:
    """The dataset's per-channel mean and std of the unscaled posterior means, from every shard's sums."""
    files = sorted(Path(path).glob("latent-stats-*.json"))
    if not files:
        raise MiroError(f"{path} holds no latent statistics; run precompute with a VAE for every shard")
    counts = {f.name.rsplit("-of-", 1)[1] for f in files}
    if len(counts) > 1:
        raise MiroError(f"{path} mixes latent statistics of shardings {sorted(counts)}; delete the stale latent-stats-*.json and rerun precompute")
    records = [json.loads(f.read_text()) for f in files]
    n = sum(r["count"] for r in records)
    mean = np.sum([r["sum"] for r in records], axis=0) / n
    variance = np.sum([r["sum_squares"] for r in records], axis=0) / n - mean ** 2
    return {"mean": mean.tolist(), "std": np.sqrt(np.maximum(variance, 0.0)).tolist(), "count": n, "shards": len(files)}


class StoredText(TextEncoder):
    """Caption embeddings read from a feature store instead of running T5.

    The trainer hands it each batch's stored embeddings (`hold`); `encode` then returns them, with the
    stored null-caption embedding for captions that caption dropout replaced by "".
    """

    def __init__(self, null_embedding: torch.Tensor, null_mask: torch.Tensor) -> None:
        self.null = (null_embedding.float(), null_mask.bool())  # (L, D), (L,)
        self.max_tokens, self.dim = null_embedding.shape
        self._held: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def hold(self, captions: Sequence[str], embeddings: torch.Tensor, masks: torch.Tensor) -> None:
        self._held = {c: (e.float(), m.bool()) for c, e, m in zip(captions, embeddings, masks)}

    def encode(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.null if c == "" else self._held[c] for c in captions]
        return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])


class Features:
    """Random access to a feature directory: `get(sample_id)` -> arrays, latents already scaled.

    The index (sample id, kind, status) of every part is read at once; payloads are read one row group at
    a time with a small cache, so the store may be far larger than memory. Files are opened per read, which
    keeps the object safe to use in forked DataLoader workers.
    """

    def __init__(self, path: str | os.PathLike, cache_groups: int = 8):
        self.path = Path(path)
        parts = sorted(self.path.glob("part-*.parquet"), key=lambda p: int(p.stem.rsplit("-", 1)[1])) if self.path.is_dir() else []
        if not parts:
            raise MiroError(f"feature directory {self.path} has no part files; run precompute(...) to write it")
        self.encoders: dict[str, dict[str, Any]] = {}
        self._where: dict[tuple[int, str], tuple[Path, int, int]] = {}
        self.failed: dict[tuple[int, str], str] = {}
        for path in parts:  # oldest first, so a newer ok row replaces an older one
            for kind, record in read_meta(path, META_KEY).get("encoders", {}).items():
                if self.encoders.setdefault(kind, record)["fingerprint"] != record["fingerprint"]:
                    raise MiroError(f"{self.path} mixes {kind} features from two encoders; rebuild it from one")
            meta = pq.ParquetFile(path).metadata
            table = pq.read_table(path, columns=["sample_id", "kind", "status", "error"])
            rows = zip(*(table[c].to_pylist() for c in ("sample_id", "kind", "status", "error")))
            offsets = np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
            for n, (sid, kind, status, error) in enumerate(rows):
                if status == "ok":
                    group = int(np.searchsorted(offsets, n, side="right") - 1)
                    self._where[(sid, kind)] = (path, group, n - int(offsets[group]))
                    self.failed.pop((sid, kind), None)
                elif (sid, kind) not in self._where:
                    self.failed[(sid, kind)] = error
        self._cache: OrderedDict[tuple[Path, int], list[bytes]] = OrderedDict()
        self._cache_groups = cache_groups

    @property
    def kinds(self) -> list[str]:
        return sorted(self.encoders)

    def stored_text(self) -> StoredText:
        """The text encoder that serves this store's caption embeddings (refuses a store without text)."""
        path = self.path / NULL_TEXT
        if "text" not in self.encoders or not path.is_file():
            raise MiroError(f"{self.path} holds no finished text features ({NULL_TEXT} is written when a precompute with text_path completes); rerun precompute with T5")
        with np.load(path) as arrays:
            if str(arrays["fingerprint"]) != self.encoders["text"]["fingerprint"]:
                raise MiroError(f"{path} comes from another T5 than the stored captions; delete it and rerun precompute")
            return StoredText(torch.from_numpy(arrays["text_embedding"]), torch.from_numpy(arrays["text_mask"]))

    def has(self, sample_id: int, kind: str) -> bool:
        return (sample_id, kind) in self._where

    def _payload(self, path: Path, group: int, row: int) -> bytes:
        key = (path, group)
        if key not in self._cache:
            self._cache[key] = pq.ParquetFile(path).read_row_group(group, columns=["payload"])["payload"].to_pylist()
            if len(self._cache) > self._cache_groups:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return self._cache[key][row]

    def get(self, sample_id: int) -> dict[str, torch.Tensor]:
        """latent (the unscaled posterior mean), latent_std (unscaled), text_embedding, text_mask: whichever
        are stored. The run's latent normalisation is applied by the trainer (miro.latents.PosteriorNormaliser)."""
        out: dict[str, torch.Tensor] = {}
        for kind in self.kinds:
            if (sample_id, kind) not in self._where:
                continue
            with np.load(io.BytesIO(self._payload(*self._where[(sample_id, kind)]))) as arrays:
                loaded = {name: torch.from_numpy(arrays[name]) for name in arrays.files}
            if kind == "latent":
                out["latent"], out["latent_std"] = loaded["latent_mean"].float(), loaded["latent_std"].float()
            else:
                out.update(loaded)
        return out

