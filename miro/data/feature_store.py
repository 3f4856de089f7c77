"""The feature store: precomputed VAE latents and T5 caption features, laid out for shuffled reads at any size.

Training reads samples in a shuffled order, so a read must touch one sample's bytes, and opening the store must
not grow with it (12M samples, 8 ranks a node). The layout follows Megatron-LM's indexed datasets: records back
to back in a file, and their offsets in fixed-size index rows beside it.

A store is a folder. Each precompute shard (one SLURM array task) appends to its own three files:
    shard-SSSSS-of-NNNNN.bin    the records, one per sample, back to back
    shard-SSSSS-of-NNNNN.idx    one ROW per record: sample id, byte offset, caption tokens, checksum of the record
    shard-SSSSS-of-NNNNN.json   the commit: rows and bytes that are final, the samples that failed and why, the
                                running per-channel sums of the latent means, whether the shard is complete
A record is the VAE posterior (mean, std) as float16 (2, C, h, w), then the caption's T5 hidden states as float16
(tokens, D), trimmed to the caption's real tokens: the mask is all ones by construction, and the training step
pads them again (StoredText), as the released code pads at collate. Rows and bytes past the commit (a killed
writer) are cut off when the shard resumes. When every shard is complete, the last to finish writes the store's index: one .npy per
column under index/, sorted by sample id, then store.json (layout, encoders, rows per shard), the mark of a whole
store. Opening a store reads store.json and memory-maps the columns: O(1) in time and memory whatever the size.
A read is one pread of one record (readahead off), checked against its XXH3-64 checksum (about 30 GB/s; zlib's
crc32 would cost a third of a read), so a damaged file is named, never misread.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xxhash
from torch.nn.utils.rnn import pad_sequence

from miro.errors import MiroError
from miro.files import atomic_path, write_json_atomic
from miro.text import TextEncoder

FORMAT = "miro.features/2"
ROW = np.dtype([("sample_id", "<i8"), ("offset", "<i8"), ("tokens", "<i4"), ("checksum", "<u8")])
COLUMNS = ("sample_id", "shard", "offset", "tokens", "checksum")  # index/<column>.npy
STORE_JSON = "store.json"
NULL_TEXT = "null_text.npy"  # the null caption's T5 states, trimmed like a record's text
LATENT_STATS = "latent_stats.json"  # per-channel mean / std of the dataset's posterior means
STORED = np.float16
REBUILD = "rebuild it with `python -m miro precompute ... --out NEW_FOLDER` (every shard), then point data.features at NEW_FOLDER"


@dataclass(frozen=True)
class Layout:
    """What every record of a store holds: the posterior's shape (2, C, h, w) and the T5 width (None: not stored);
    `max_tokens` is the token length captions were truncated to when encoded (the run's text.max_tokens)."""

    latent_shape: tuple[int, ...] | None
    text_dim: int | None
    max_tokens: int

    @cached_property
    def latent_bytes(self) -> int:
        return math.prod(self.latent_shape) * STORED().itemsize if self.latent_shape else 0

    def record_bytes(self, tokens: int) -> int:
        return self.latent_bytes + tokens * (self.text_dim or 0) * STORED().itemsize

    @staticmethod
    def from_json(record: Mapping[str, Any]) -> Layout:
        shape = record["latent_shape"]
        return Layout(tuple(shape) if shape else None, record["text_dim"], record["max_tokens"])


def shard_name(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}"


def refuse_old_store(folder: Path) -> None:
    """A folder of parquet parts is a store of the earlier format (miro.features/1): refused, never misread."""
    if any(folder.glob("part-*.parquet")):
        raise MiroError(f"{folder} is a feature store of the earlier format (parquet parts, miro.features/1), which this version "
                        f"no longer reads; {REBUILD}")


# --------------------------------------------------------------------------------------------------
# writing: one writer per shard, append-only with commits
# --------------------------------------------------------------------------------------------------
class FeatureWriter:
    """Appends one shard's records; `commit()` makes what was added final, `finish()` completes the shard.

    Reopening a shard resumes it: bytes and rows past its last commit are cut off, `done` names the samples
    already stored or failed. A shard written with other encoders, another layout or another sharding is refused.
    """

    def __init__(self, folder: str | os.PathLike, shard: int, count: int, encoders: Mapping[str, Any], layout: Layout) -> None:
        if not 0 <= shard < count:
            raise MiroError(f"shard = {shard} must lie in [0, count = {count})")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        refuse_old_store(self.folder)
        others = {p.name.rsplit("-of-", 1)[1] for p in self.folder.glob("shard-*-of-*.json")} - {f"{count:05d}.json"}
        if others:
            raise MiroError(f"{self.folder} holds shards of another sharding ({', '.join(sorted(o[:-5].lstrip('0') for o in others))} "
                            f"shards, not {count}); write to a new folder or precompute with the same shard count")
        self.shard, self.count, self.layout = shard, count, layout
        self.encoders = dict(encoders)
        name = shard_name(shard, count)
        self.bin_path, self.idx_path, self.commit_path = (self.folder / f"{name}{ext}" for ext in (".bin", ".idx", ".json"))
        self.commit_record = self._resume()
        self.done: set[int] = set(np.fromfile(self.idx_path, ROW)["sample_id"].tolist()) | {int(s) for s in self.commit_record["failed"]}
        self._bin = open(self.bin_path, "ab")
        self._idx = open(self.idx_path, "ab")
        self._rows, self._bytes = self.commit_record["rows"], self.commit_record["bytes"]
        self._failed: dict[str, str] = dict(self.commit_record["failed"])
        sums = self.commit_record["latent_sums"]
        self._sums = np.array([sums["sum"], sums["sum_squares"]], dtype=np.float64) if sums else None
        self._count = sums["count"] if sums else 0

    def _resume(self) -> dict[str, Any]:
        fresh = {"format": FORMAT, "shard": [self.shard, self.count], "encoders": self.encoders, "layout": asdict(self.layout),
                 "rows": 0, "bytes": 0, "failed": {}, "latent_sums": None, "complete": False}
        if not self.commit_path.is_file():
            for path in (self.bin_path, self.idx_path):
                path.write_bytes(b"")
            return fresh
        record = json.loads(self.commit_path.read_text())
        for key, now in (("encoders", self.encoders), ("layout", asdict(self.layout))):
            if json.dumps(record[key], sort_keys=True) != json.dumps(now, sort_keys=True):
                raise MiroError(f"{self.commit_path} was written with other {key} ({record[key]}, now {now}); "
                                "write to a new folder or delete this shard's files to encode it again")
        for path, size in ((self.bin_path, record["bytes"]), (self.idx_path, record["rows"] * ROW.itemsize)):
            if not path.is_file() or path.stat().st_size < size:
                raise MiroError(f"{path} is shorter than its commit ({size} bytes); delete {self.commit_path.stem}.* and rerun this shard")
            os.truncate(path, size)  # what a killed writer appended after its last commit
        return record

    def add(self, sample_id: int, latent: np.ndarray | None, text: np.ndarray | None) -> None:
        """One sample: latent (2, C, h, w) posterior mean and std, text (tokens, D) trimmed; float16 as stored."""
        parts = []
        if self.layout.latent_shape:
            assert latent is not None and latent.shape == self.layout.latent_shape and latent.dtype == STORED
            parts.append(latent.tobytes())
            flat = latent[0].astype(np.float64).reshape(latent.shape[1], -1)  # (C, h*w) of the mean
            sums = np.stack([flat.sum(1), (flat ** 2).sum(1)])
            self._sums = sums if self._sums is None else self._sums + sums
            self._count += flat.shape[1]
        tokens = 0
        if self.layout.text_dim:
            assert text is not None and text.ndim == 2 and text.shape[1] == self.layout.text_dim and text.dtype == STORED
            tokens = text.shape[0]
            parts.append(text.tobytes())
        record = b"".join(parts)
        row = np.array([(sample_id, self._bytes, tokens, xxhash.xxh3_64_intdigest(record))], dtype=ROW)
        self._bin.write(record)
        self._idx.write(row.tobytes())
        self._bytes += len(record)
        self._rows += 1
        self.done.add(sample_id)

    def fail(self, sample_id: int, error: str) -> None:
        self._failed[str(sample_id)] = error
        self.done.add(sample_id)

    def commit(self, complete: bool = False) -> None:
        """Make every added record final (data first, then the commit record that counts it)."""
        for f in (self._bin, self._idx):
            f.flush()
            os.fsync(f.fileno())
        sums = None if self._sums is None else {"sum": self._sums[0].tolist(), "sum_squares": self._sums[1].tolist(), "count": self._count}
        self.commit_record = {**self.commit_record, "rows": self._rows, "bytes": self._bytes, "failed": self._failed,
                              "latent_sums": sums, "complete": complete}
        write_json_atomic(self.commit_path, self.commit_record)

    def close(self) -> None:
        self._bin.close()
        self._idx.close()

    def finish(self) -> bool:
        """Complete this shard; when every shard of the store is complete, write the store's index. True if written."""
        self.commit(complete=True)
        self.close()
        return build_index(self.folder, self.count)


def build_index(folder: Path, count: int) -> bool:
    """The store's index and store.json once all `count` shards are complete (idempotent; False while some are not)."""
    commits = [folder / f"{shard_name(i, count)}.json" for i in range(count)]
    if not all(p.is_file() for p in commits):
        return False
    records = [json.loads(p.read_text()) for p in commits]
    if not all(r["complete"] for r in records):
        return False
    meta = folder / STORE_JSON
    if meta.is_file() and json.loads(meta.read_text())["shard_rows"] == [r["rows"] for r in records]:
        return True  # already indexed (a rerun of a finished shard): readers keep their maps
    rows = [np.fromfile(folder / f"{shard_name(i, count)}.idx", ROW, count=r["rows"]) for i, r in enumerate(records)]
    table = np.concatenate(rows) if rows else np.zeros(0, ROW)
    shard = np.concatenate([np.full(len(r), i, dtype=np.int32) for i, r in enumerate(rows)])
    order = np.argsort(table["sample_id"], kind="stable")
    ids = table["sample_id"][order]
    twice = ids[1:][ids[1:] == ids[:-1]]
    if len(twice):
        raise MiroError(f"{folder}: sample {twice[0]} is stored by two shards; the shards were written from different data, rebuild the store")
    columns = {"sample_id": ids, "shard": shard[order], "offset": table["offset"][order], "tokens": table["tokens"][order],
               "checksum": table["checksum"][order]}
    with atomic_path(folder / "index") as tmp:
        tmp.mkdir()
        for name in COLUMNS:
            np.save(tmp / f"{name}.npy", columns[name])
    sums = [r["latent_sums"] for r in records if r["latent_sums"]]
    if sums:
        write_json_atomic(folder / LATENT_STATS, latent_statistics(sums))
    failed = sum(len(r["failed"]) for r in records)
    write_json_atomic(folder / STORE_JSON, {"format": FORMAT, "layout": records[0]["layout"], "encoders": records[0]["encoders"],
                                            "shards": count, "shard_rows": [r["rows"] for r in records],
                                            "shard_bytes": [r["bytes"] for r in records], "rows": int(len(ids)), "failed": failed})
    return True


def latent_statistics(sums: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The dataset's per-channel mean and std of the unscaled posterior means, from every shard's running sums."""
    n = sum(s["count"] for s in sums)
    mean = np.sum([s["sum"] for s in sums], axis=0) / n
    variance = np.sum([s["sum_squares"] for s in sums], axis=0) / n - mean ** 2
    return {"mean": mean.tolist(), "std": np.sqrt(np.maximum(variance, 0.0)).tolist(), "count": n, "shards": len(sums)}


def write_null_text(folder: Path, states: np.ndarray, fingerprint: str) -> None:
    """The null caption's T5 states (tokens, D) float16, with the fingerprint of the T5 that made them."""
    with atomic_path(folder / NULL_TEXT) as tmp, open(tmp, "wb") as f:
        np.save(f, states.astype(STORED))
    write_json_atomic(folder / f"{NULL_TEXT}.json", {"fingerprint": fingerprint})


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    """One sample's stored features: latent (2, C, h, w) posterior mean and std, text (tokens, D); float16."""

    sample_id: int
    latent: torch.Tensor | None
    text: torch.Tensor | None


class FeatureStore:
    """Random access to a whole store: `read(row)` for the row-th sample in sample-id order.

    Holds no per-sample Python objects: the index columns are memory-mapped and files are opened per process
    (so the object can be sent to DataLoader workers, forked or spawned). `bytes_read` counts what reads asked of
    the files, to check that a read touches one record.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise MiroError(f"feature folder {self.path} does not exist; run `python -m miro precompute --out {self.path}` to write it")
        refuse_old_store(self.path)
        meta_path = self.path / STORE_JSON
        if not meta_path.is_file():
            shards = sorted(self.path.glob("shard-*-of-*.json"))
            if not shards:
                raise MiroError(f"feature folder {self.path} holds no feature store; run `python -m miro precompute --out {self.path}` to write it")
            count = int(shards[0].stem.rsplit("-of-", 1)[1])
            complete = sum(json.loads(p.read_text())["complete"] for p in shards)
            raise MiroError(f"feature store {self.path} is not finished: {complete} of {count} shards complete; run the others "
                            f"(`python -m miro precompute ... --out {self.path} --shard I/{count}`)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise MiroError(f"{meta_path} has format {meta.get('format')!r}, not {FORMAT}; {REBUILD}")
        self.layout = Layout.from_json(meta["layout"])
        self.encoders: dict[str, Any] = meta["encoders"]
        self.shards, self.rows, self.failed = int(meta["shards"]), int(meta["rows"]), int(meta["failed"])
        self._check_shards(meta)
        self._columns: dict[str, np.ndarray] | None = None
        self._files: dict[int, int] = {}
        self._pid = os.getpid()
        self.bytes_read = 0

    def _check_shards(self, meta: Mapping[str, Any]) -> None:
        """Each shard's commit matches the index and its file holds the committed bytes (a stat per shard)."""
        for i, (rows, size) in enumerate(zip(meta["shard_rows"], meta["shard_bytes"])):
            name = shard_name(i, self.shards)
            commit = json.loads((self.path / f"{name}.json").read_text())
            if commit["rows"] != rows:
                raise MiroError(f"{self.path / name}.json has {commit['rows']} rows but the store's index was built with {rows}; "
                                f"rerun precompute for shard {i}/{self.shards} to rebuild the index")
            data = self.path / f"{name}.bin"
            if not data.is_file() or data.stat().st_size < size:
                raise MiroError(f"{data} is truncated ({data.stat().st_size if data.is_file() else 0} of {size} bytes); "
                                f"delete {name}.* and rerun precompute for shard {i}/{self.shards}")

    def __getstate__(self) -> dict[str, Any]:  # workers map the columns and open the files themselves
        return {**self.__dict__, "_columns": None, "_files": {}}

    @property
    def columns(self) -> dict[str, np.ndarray]:
        if self._columns is None:
            self._columns = {name: np.load(self.path / "index" / f"{name}.npy", mmap_mode="r") for name in COLUMNS}
        return self._columns

    @property
    def kinds(self) -> list[str]:
        return [k for k, stored in (("latent", self.layout.latent_shape), ("text", self.layout.text_dim)) if stored]

    def __len__(self) -> int:
        return self.rows

    @property
    def sample_ids(self) -> np.ndarray:
        """Every stored sample id, ascending (memory-mapped)."""
        return self.columns["sample_id"]

    def rows_of(self, sample_ids: np.ndarray) -> np.ndarray:
        """The row of each sample id, -1 where it is not stored."""
        ids = self.sample_ids
        rows = np.searchsorted(ids, sample_ids)
        found = rows < len(ids)
        found[found] = ids[rows[found]] == sample_ids[found]
        return np.where(found, rows, -1)

    def _file(self, shard: int) -> int:
        if self._pid != os.getpid():  # a forked worker opens its own
            self._files, self._pid = {}, os.getpid()
        if shard not in self._files:
            fd = os.open(self.path / f"{shard_name(shard, self.shards)}.bin", os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # no readahead: a read fetches its record only
            self._files[shard] = fd
        return self._files[shard]

    def read(self, row: int) -> Record:
        return self.read_rows(np.array([row]))[0]

    def read_rows(self, rows: np.ndarray) -> list[Record]:
        """The records of `rows`: their index entries fetched at once, every record's read queued with the kernel
        (WILLNEED: the disk works on all of them together, as a batch from several processes would), then one pread
        each."""
        c = self.columns
        entries = list(zip(*(c[name][rows].tolist() for name in ("sample_id", "shard", "offset", "tokens", "checksum"))))
        if len(entries) > 1:
            for _, shard, offset, tokens, _ in entries:
                os.posix_fadvise(self._file(shard), offset, self.layout.record_bytes(tokens), os.POSIX_FADV_WILLNEED)
        return [self._record(*entry) for entry in entries]

    def _record(self, sample_id: int, shard: int, offset: int, tokens: int, checksum: int) -> Record:
        size = self.layout.record_bytes(tokens)
        raw = torch.empty(size, dtype=torch.uint8)  # the tensors of the record share this memory
        view = raw.numpy().data  # a writable memoryview of the tensor
        got = os.preadv(self._file(shard), [view], offset)
        self.bytes_read += got
        if got != size or xxhash.xxh3_64_intdigest(view) != checksum:
            where = f"{self.path / shard_name(shard, self.shards)}.bin: the record of sample {sample_id}"
            fix = f"delete the shard's files and rerun precompute for shard {shard}/{self.shards}"
            if got != size:
                raise MiroError(f"{where} is cut short at byte {offset + got} (the file is truncated); {fix}")
            raise MiroError(f"{where} at byte {offset} fails its checksum (the file is damaged); {fix}")
        data = raw.view(torch.float16)
        split = self.layout.latent_bytes // STORED().itemsize
        latent = data[:split].view(self.layout.latent_shape) if self.layout.latent_shape else None
        text = data[split:].view(tokens, self.layout.text_dim) if self.layout.text_dim else None
        return Record(sample_id, latent, text)

    def stored_text(self, device: torch.device | str = "cpu") -> StoredText:
        """The text encoder that serves this store's caption features on `device` (refuses a store without text)."""
        path = self.path / NULL_TEXT
        if not self.layout.text_dim or not path.is_file():
            raise MiroError(f"{self.path} holds no text features; rerun precompute with a T5 (--t5 or the weights file's [t5])")
        if json.loads(Path(f"{path}.json").read_text())["fingerprint"] != self.encoders["text"]["fingerprint"]:
            raise MiroError(f"{path} comes from another T5 than the stored captions; delete it and rerun precompute")
        return StoredText(torch.from_numpy(np.load(path)).to(device), self.layout.max_tokens)

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files = {}


class StoredText(TextEncoder):
    """Caption features read from a feature store instead of running T5.

    A batch's stored states arrive trimmed and end to end (`hold`: the loader's per-sample keys, the (tokens, D)
    rows of all of them and each one's count), are moved to the null states' device, and are padded there to
    `max_tokens` by `encode`, which serves the stored null-caption states for captions that caption dropout
    replaced by "" (miro.objective.condition_inputs). Padding where the step runs keeps the padded (B, L, D) batch,
    two to three times the trimmed bytes, off the loader's path.
    """

    def __init__(self, null_states: torch.Tensor, max_tokens: int) -> None:
        self.max_tokens, self.dim = max_tokens, null_states.shape[1]
        self.null_states = null_states  # (tokens, D), on the device the batches are padded on
        self._held: dict[str, torch.Tensor] = {}

    def hold(self, keys: Sequence[str], states: torch.Tensor, tokens: torch.Tensor) -> None:
        states = states.to(self.null_states.device, non_blocking=True)
        self._held = dict(zip(keys, states.split(tokens.tolist()), strict=True))

    def encode(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        text, mask = pad_tokens([self.null_states if c == "" else self._held[c] for c in captions], self.max_tokens)
        return text.float(), mask


def pad_tokens(states: Sequence[torch.Tensor], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Trimmed caption states [(tokens_i, D)] -> (B, max_tokens, D) zero-padded and the (B, max_tokens) mask, on their device."""
    rows = [s[:max_tokens] for s in states]
    padded = pad_sequence(rows, batch_first=True)  # (B, longest, D): one call, not a copy per caption
    out = torch.nn.functional.pad(padded, (0, 0, 0, max_tokens - padded.shape[1]))
    lengths = torch.tensor([len(r) for r in rows], device=out.device)
    return out, torch.arange(max_tokens, device=out.device) < lengths.unsqueeze(1)
