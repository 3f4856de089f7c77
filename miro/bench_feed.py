"""Training fed from a feature store, end to end: the real trainer (miro.train) on the paper preset, reading a
synthetic store at the paper's dimensions through the real DataLoader path. One JSON line.

    python -m miro.bench feed [--steps 200] [--batch 128] [--samples 4096] [--workers N] [--compile]

On a GPU: the released 360.4M RIN at --batch (bf16 autocast), --steps steps; it prints the training rate after the
first logged interval (samples_per_s), the share of the step time spent waiting for batches (data_wait_fraction)
and the CUDA allocator's peak (peak_mem_GiB). On a CPU it runs the reference's tiny network (as `python -m
miro.bench` does) at batch 8 for a few steps: only that the path works means anything there.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from miro.bench import bench_config
from miro.bench_data import PAPER, REWARDS, training_set, write_annotation, write_store
from miro.config import DataConfig, LatentConfig, RewardConfig, RunConfig, TextConfig
from miro.data.feature_store import Layout
from miro.train import train


def feed_config(folder: Path, tiny: bool, batch: int, steps: int, compile_network: bool) -> RunConfig:
    """The paper preset (tiny network on a CPU) reading latents and caption features from the store at `folder`;
    the T5 and VAE paths do not exist, as the trainer never loads them when both are stored."""
    cfg = bench_config(tiny)
    return replace(cfg, name="feed",
                   data=DataConfig(source="webdataset", path=str(folder), annotations=str(folder / "annotations.parquet"),
                                   features=str(folder), resolution=256),
                   rewards=replace(cfg.rewards, names=REWARDS) if not tiny else RewardConfig(names=REWARDS, scheme="tokens"),
                   text=TextConfig(encoder="t5", path=str(folder / "no-t5"), max_tokens=PAPER.max_tokens),
                   latents=LatentConfig(space="vae", vae_path=str(folder / "no-vae"), normalisation="sdxl_channel_wise",
                                        sample_posterior=True),
                   optim=replace(cfg.optim, batch_size=batch, steps=steps, warmup_steps=10, compile=compile_network,
                                 precision="fp32" if tiny else "bf16"),
                   checkpoint_every=steps, log_every=max(1, steps // 20))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m miro.bench feed", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--samples", type=int, default=4096, help="samples in the synthetic store")
    parser.add_argument("--workers", type=int, default=None, help="data-loading processes (default: the trainer's)")
    parser.add_argument("--compile", action="store_true", help="optim.compile: torch.compile the network")
    parser.add_argument("--dir", type=Path, default=Path("runs/bench-feed"), help="where the store and the run are written")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    tiny = not cuda
    steps, batch = (args.steps, args.batch) if cuda else (min(args.steps, 6), 8)
    layout = PAPER if not tiny else Layout(latent_shape=(2, 4, 8, 8), text_dim=32, max_tokens=PAPER.max_tokens)
    shutil.rmtree(args.dir, ignore_errors=True)
    store, run = args.dir / "store", args.dir / "run"
    store.mkdir(parents=True)
    try:
        write_store(store, args.samples if cuda else 64, layout)
        write_annotation(store / "annotations.parquet", args.samples if cuda else 64)
        cfg = feed_config(store, tiny, batch, steps, args.compile)
        data = training_set(store)
        tic = time.perf_counter()
        train(cfg, data, run, progress=False, workers=args.workers)
        seconds = time.perf_counter() - tic
        log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()][1:]  # the first interval holds start-up
        report = {"device": torch.cuda.get_device_name() if cuda else "cpu (tiny network: only the path is checked)",
                  "config": "paper preset, released 360.4M RIN, bf16 autocast" if cuda else "the reference's TINY=1 network",
                  "batch": batch, "steps": steps, "compile": args.compile, "wall_s": round(seconds, 1),
                  "samples_per_s": round(statistics.median(r["samples_per_s"] for r in log), 1) if log else None,
                  "data_wait_fraction": round(statistics.mean(r["data_wait"] for r in log), 4) if log else None,
                  "peak_mem_GiB": round(torch.cuda.max_memory_allocated() / 2**30, 1) if cuda else None}
    finally:
        shutil.rmtree(args.dir, ignore_errors=True)
    print(json.dumps(report))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
