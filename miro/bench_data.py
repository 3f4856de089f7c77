"""Data-feed benchmark: can the feature store feed a GPU at the paper's scale? One JSON line.

    python -m miro.bench data [--samples 20000] [--dir runs/bench-data] [--reads 3000]

Builds a store at the paper's dimensions through the project's own writer (miro.data.feature_store; random
contents: posterior mean and std float16 4x32x32, FLAN-T5-XL states d = 2048 for captions of 20-40 tokens,
max_tokens 77, two shards) and an annotation of seven rewards, then measures, in this one run:
- bytes_per_sample: the store's bytes on disk (records, index rows, index columns) per sample;
- read_samples_per_s: shuffled training items per second in one process (FeatureTrainingSet.__getitems__ of
  micro-batches, as the loader's workers read: one pread per record, checksummed, as tensors), page cache emptied first (the store of a 12M-sample run is far larger than memory);
  reference_read_samples_per_s: a plain numpy memmap of the same record files read at the same indices, page
  cache emptied the same way; read_ratio = ours / reference; the same three numbers with a warm cache;
- bytes_read_per_sample: what the reads asked of the files per sample (os_bytes_read_per_sample: what the kernel
  fetched from disk, /proc/self/io), against record_bytes_per_sample, the mean stored record;
- open_s / open_mb at two store sizes (a fresh process opening the training set and reading one item: time and
  resident memory added; median of three processes), extrapolated linearly to 12M samples (open_s_12m,
  open_mb_12m; a linear fit of two small sizes magnifies noise 600-fold, so read it as an upper bound); before it a
  rank checks its bins against the annotation (bins_check_s / _mb at each size, not extrapolated: it reads the whole
  annotation file up to 64 MiB and 16 blocks of 64 KiB of a larger one, miro.content.file_identity); index_build_s_12m
  extrapolates the one-time join of annotation and store that a run's first rank makes;
- data_wait_fraction: the share of a training loop's time spent waiting for its next batch, read through the
  trainer's own loader (miro.data.loader) with a simulated GPU step (a sleep of batch / --gpu-rate seconds in
  place of the model) at 0, 1 and 2 worker processes, after --warmup steps.
Timings are noisy on a shared machine: compare the ratios measured in one run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from miro.data.annotate import FORMAT as ANNOTATION_FORMAT
from miro.data.annotate import META_KEY, info_record, write_parquet_atomic
from miro.data.feature_store import STORED, FeatureStore, FeatureWriter, Layout, shard_name, write_null_text
from miro.data.loader import TrainingBatches, training_batches
from miro.data.training_set import FeatureTrainingSet, fit_bins
from miro.rewards.base import ScorerInfo

PAPER = Layout(latent_shape=(2, 4, 32, 32), text_dim=2048, max_tokens=77)  # SDXL VAE at 256 px, FLAN-T5-XL, the paper preset
REWARDS = ("aesthetic", "clip_score", "hpsv2", "image_reward", "pickscore", "sciscore", "vqascore")
TARGET = 12_000_000  # samples of the paper's data (cc12m + LAION aesthetics)
SHARDS = 2


def write_store(folder: Path, samples: int, layout: Layout = PAPER, tokens: tuple[int, int] = (20, 40), seed: int = 0) -> None:
    """A store of `samples` records (captions of tokens[0] to tokens[1] tokens), written by FeatureWriter in two
    shards; random float16 contents, sliced from a pool so that writing, not drawing numbers, is timed."""
    assert layout.latent_shape is not None and layout.text_dim is not None
    rng = np.random.default_rng(seed)
    pool = rng.standard_normal(1 << 22).astype(STORED)
    encoders = {"latent": {"fingerprint": "synthetic", "scaling_factor": 0.13025, "shift_factor": 0.0},
                "text": {"fingerprint": "synthetic", "max_tokens": layout.max_tokens}}
    latent_size, dim = int(np.prod(layout.latent_shape)), layout.text_dim
    counts = rng.integers(tokens[0], tokens[1] + 1, samples)
    starts = rng.integers(0, len(pool) - max(latent_size, tokens[1] * dim), samples)
    for shard in range(SHARDS):
        writer = FeatureWriter(folder, shard, SHARDS, encoders, layout)
        for sid in range(shard, samples, SHARDS):
            at = int(starts[sid])
            writer.add(sid, pool[at: at + latent_size].reshape(layout.latent_shape), pool[at: at + counts[sid] * dim].reshape(-1, dim))
            if sid % 2048 == shard:
                writer.commit()
        writer.finish()
    write_null_text(folder, pool[: dim].reshape(1, dim), "synthetic")


def write_annotation(path: Path, samples: int, seed: int = 0) -> None:
    """An assembled annotation of the seven paper rewards for sample ids 0 .. samples - 1 (random scores)."""
    rng = np.random.default_rng(seed)
    wide: dict[str, Any] = {"sample_id": np.arange(samples, dtype=np.int64), "caption": [f"caption {i}" for i in range(samples)]}
    for name in REWARDS:
        wide[name], wide[f"{name}__status"], wide[f"{name}__error"] = rng.random(samples), ["ok"] * samples, [""] * samples
    scorers = {name: info_record(ScorerInfo(name, "bench")) for name in REWARDS}
    write_parquet_atomic(pa.Table.from_pandas(pd.DataFrame(wide), preserve_index=False), path, META_KEY,
                         {"format": ANNOTATION_FORMAT, "scorers": scorers, "shard": None})


def training_set(folder: Path) -> FeatureTrainingSet:
    annotation = folder / "annotations.parquet"
    return FeatureTrainingSet(folder, annotation, fit_bins(annotation, REWARDS), REWARDS)


def evict(folder: Path) -> bool:
    """Drop the store's record files from the page cache (True if the kernel accepted it for every file)."""
    done = True
    for path in folder.glob("shard-*.bin"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            done = False
        finally:
            os.close(fd)
    return done


def disk_read_bytes() -> int:
    """Bytes this process caused to be read from storage (/proc/self/io; 0 where it is not available)."""
    try:
        fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    except OSError:
        return 0
    return int(fields["read_bytes"])


def read_ours(data: FeatureTrainingSet, indices: np.ndarray, batch: int) -> float:
    """Training items in the loader's way: a micro-batch at a time (`__getitems__`)."""
    tic = time.perf_counter()
    for first in range(0, len(indices), batch):
        data.__getitems__(indices[first: first + batch].tolist())
    return len(indices) / (time.perf_counter() - tic)


def read_reference(store: FeatureStore, rows: np.ndarray) -> float:
    """A plain numpy memmap of each record file, the same records sliced at the same rows, as tensors."""
    maps = [np.memmap(store.path / f"{shard_name(s, store.shards)}.bin", dtype=np.uint8, mode="r") for s in range(store.shards)]
    c = store.columns
    split, shape = store.layout.latent_bytes, store.layout.latent_shape
    assert shape is not None
    tic = time.perf_counter()
    for row in rows:
        shard, offset, tokens = int(c["shard"][row]), int(c["offset"][row]), int(c["tokens"][row])
        record = np.array(maps[shard][offset: offset + store.layout.record_bytes(tokens)])
        latent = torch.from_numpy(record[:split].view(np.float16)).view(shape)
        text = torch.from_numpy(record[split:].view(np.float16)).view(tokens, -1)
        assert latent.shape[0] == 2 and text.shape[1] == store.layout.text_dim
    return len(rows) / (time.perf_counter() - tic)


def measure_open(folder: Path, repeats: int = 3) -> dict[str, float]:
    """In fresh processes (torch already imported), what a rank's start adds in seconds and resident MiB: checking the
    bins against the annotation (bins_check_*), then opening the training set (store, training index) and reading its
    first item (open_*); the median of `repeats` processes."""
    runs = [_open_once(folder) for _ in range(repeats)]
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def _open_once(folder: Path) -> dict[str, float]:
    code = ("import json, sys, time; from pathlib import Path; import torch, numpy, pandas, pyarrow\n"
            "from miro.bench_data import REWARDS, rss_mib; from miro.data.training_set import FeatureTrainingSet, fit_bins\n"
            "folder = Path(sys.argv[1]); annotation = folder / 'annotations.parquet'\n"
            "r0, t0 = rss_mib(), time.perf_counter(); bins = fit_bins(annotation, REWARDS); r1, t1 = rss_mib(), time.perf_counter()\n"
            "FeatureTrainingSet(folder, annotation, bins, REWARDS)[0]; r2, t2 = rss_mib(), time.perf_counter()\n"
            "print(json.dumps({'bins_check_s': t1 - t0, 'bins_check_mb': r1 - r0, 'open_s': t2 - t1, 'open_mb': r2 - r1}))")
    out = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def rss_mib() -> float:
    """This process's resident memory now (MiB)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def extrapolate(sizes: Sequence[int], values: Sequence[float], at: int = TARGET) -> float:
    """The line through two (size, value) points, at `at`."""
    slope = (values[1] - values[0]) / (sizes[1] - sizes[0])
    return values[1] + slope * (at - sizes[1])


def data_wait(data: FeatureTrainingSet, workers: int, batch: int, steps: int, warmup: int, rate: float, folder: Path) -> float:
    """The trainer's loader with a sleep of batch / rate seconds as the step: the share of time spent waiting."""
    evict(folder)
    order = TrainingBatches(0, steps + warmup, 1, 1, 0, batch, len(data), seed=workers)
    batches = training_batches(data, order, len(REWARDS), PAPER.max_tokens, workers, pin_memory=False)
    waited, tic = 0.0, 0.0
    for step in range(steps + warmup):
        if step == warmup:
            waited, tic = 0.0, time.perf_counter()
        wait_from = time.perf_counter()
        next(batches)
        waited += time.perf_counter() - wait_from
        time.sleep(batch / rate)
    fraction = waited / (time.perf_counter() - tic)
    batches.close()
    return round(fraction, 4)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m miro.bench data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20_000, help="samples in the store (>= 2000)")
    parser.add_argument("--dir", type=Path, default=Path("runs/bench-data"), help="where the stores are written (on the disk to measure)")
    parser.add_argument("--reads", type=int, default=3000, help="shuffled reads timed per reader")
    parser.add_argument("--batch", type=int, default=64, help="micro-batch of the simulated loop (the paper: 1024 over 16 GPUs)")
    parser.add_argument("--gpu-rate", type=float, default=600.0, help="samples/s of the simulated GPU step")
    parser.add_argument("--steps", type=int, default=100, help="simulated steps measured per worker count")
    parser.add_argument("--warmup", type=int, default=10, help="simulated steps before the measurement (workers start)")
    parser.add_argument("--keep", action="store_true", help="keep the stores (deleted by default)")
    args = parser.parse_args(argv)
    if args.samples < 2000:
        sys.exit("error: --samples must be >= 2000 (two store sizes are measured: samples / 10 and samples)")
    torch.set_num_threads(1)
    sizes = (args.samples // 10, args.samples)
    folders = [args.dir / f"store-{n}" for n in sizes]
    report: dict[str, Any] = {"samples": args.samples, "layout": "latent 2x4x32x32 fp16 + T5 2048 x 20-40 tokens fp16 (padded to 77 where the step runs)"}
    try:
        for folder, n in zip(folders, sizes):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            tic = time.perf_counter()
            write_store(folder, n)
            report.setdefault("write_samples_per_s", round(n / (time.perf_counter() - tic)))
            write_annotation(folder / "annotations.parquet", n)
        build = []
        for folder in folders:
            tic = time.perf_counter()
            training_set(folder)  # the one-time join of annotation and store
            build.append(time.perf_counter() - tic)
        big = folders[1]
        data = training_set(big)
        store = data.features
        stored = sum(p.stat().st_size for p in big.glob("shard-*")) + sum(p.stat().st_size for p in (big / "index").iterdir())
        report["bytes_per_sample"] = round(stored / len(store))
        rng = np.random.default_rng(1)
        indices = rng.choice(len(data), size=min(args.reads, len(data)), replace=False)
        rows = np.asarray(data.mapped()[0])[indices]
        report["cache_emptied"] = evict(big)
        disk, asked = disk_read_bytes(), store.bytes_read
        ours = read_ours(data, indices, args.batch)
        report["bytes_read_per_sample"] = round((store.bytes_read - asked) / len(indices))
        report["os_bytes_read_per_sample"] = round((disk_read_bytes() - disk) / len(indices))
        report["record_bytes_per_sample"] = round(float(np.mean([store.layout.record_bytes(int(t)) for t in store.columns["tokens"][rows]])))
        evict(big)
        reference = read_reference(store, rows)
        report.update(read_samples_per_s=round(ours), reference_read_samples_per_s=round(reference), read_ratio=round(ours / reference, 3))
        warm, warm_reference = read_ours(data, indices, args.batch), read_reference(store, rows)
        report.update(read_samples_per_s_warm=round(warm), reference_read_samples_per_s_warm=round(warm_reference),
                      read_ratio_warm=round(warm / warm_reference, 3))
        opened = [measure_open(folder) for folder in folders]
        report["open"] = {str(n): {k: round(v, 4) for k, v in o.items()} for n, o in zip(sizes, opened)}
        report["open_s_12m"] = round(max(0.0, extrapolate(sizes, [o["open_s"] for o in opened])), 3)
        report["open_mb_12m"] = round(max(0.0, extrapolate(sizes, [o["open_mb"] for o in opened])), 1)
        report["index_build_s_12m"] = round(extrapolate(sizes, build), 1)
        report["data_wait_fraction"] = {str(w): data_wait(data, w, args.batch, args.steps, args.warmup, args.gpu_rate, big) for w in (0, 1, 2)}
        report.update(simulated_gpu_samples_per_s=args.gpu_rate, batch=args.batch, cores=len(os.sched_getaffinity(0)))
    finally:
        if not args.keep:
            for folder in folders:
                shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
