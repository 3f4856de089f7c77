"""Throughput benchmark: ours against the authors' network, same device, same run, one JSON line.

    python -m miro.bench [--compile] [--reference ../shared/bench/official_miro_throughput.py --reference-site .bench_ref]
    python -m miro.bench data [--samples N]     the data-feed benchmark (miro/bench_data.py)
    python -m miro.bench feed [--steps N]       the paper preset trained from a synthetic store (miro/bench_feed.py)

Training: samples/s of a flow-matching step (self-conditioning, uncertainty weighting, bf16 autocast on
CUDA, fused AdamW: the reference's step) at batch 128 and its peak memory. Sampling: images/s of 50 Euler
steps with multi-reward guidance at batch 64. Both at the released 360.4M RIN with 128 random text tokens,
as the reference times precomputed T5 tokens. With --reference the authors' script (PyPI miro-t2i 0.1.4,
unpacked into --reference-site) is timed too: each side runs in a fresh process of its own (both packages
are named `miro`), in the order ours, official, repeated --repeats times; each number is the median over
the repeats and the ratios are ours / official. Peak memory is the CUDA allocator's peak on a GPU and each
process's peak resident size everywhere (`peak_rss_MiB`, which includes the Python runtime).
On a CPU both sides run a tiny configuration (the reference's TINY=1): the JSON says so, and only the ratios
mean anything.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from miro.compilation import compile_network
from miro.config import RunConfig
from miro.nets.flow_model import LogVarianceHead, build_model
from miro.objective import flow_matching_loss
from miro.presets import paper
from miro.sample import guidance_branches, sample
from miro.seeding import generator_for
from miro.text import TextEncoder

Numbers = dict[str, float]


class RandomTextFeatures(TextEncoder):
    """Stands in for precomputed T5 tokens: the same random features, already on the device, for every caption."""

    def __init__(self, dim: int, max_tokens: int, device: torch.device) -> None:
        self.dim, self.max_tokens = dim, max_tokens
        self.features = torch.randn(max_tokens, dim, generator=generator_for("bench-text")).to(device)

    def encode(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        b = len(captions)
        return self.features.expand(b, -1, -1), torch.ones(b, self.max_tokens, dtype=torch.bool, device=self.features.device)


def bench_config(tiny: bool) -> RunConfig:
    """The released network; tiny: the reference script's TINY=1 network."""
    cfg = paper(data="unread", text="unread", vae="unread")  # the network only: no file is opened
    if not tiny:
        return cfg
    return replace(cfg, model=replace(cfg.model, image_size=8, width=64, heads=4, data_dim=64, num_latents=48,
                                      rin_blocks=1, rin_layers_per_block=1, read_write_heads=4, cond_heads=4))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_gib() -> float:
    return round(torch.cuda.max_memory_allocated() / 2**30, 1)


def run_ours(tiny: bool, batch: int, compile_mode: str | None, sample_compile_mode: str | None,
             device: torch.device) -> Numbers:
    """Our training step and sampler, timed like the reference (same warm-up, steps and batch)."""
    cfg = bench_config(tiny)
    text_dim = 32 if tiny else 2048
    text = RandomTextFeatures(text_dim, 128, device)  # the reference times 128 text tokens
    model = build_model(cfg.model, cfg.rewards, cfg.objective, text_dim).to(device)
    logvar = LogVarianceHead().to(device)
    optimizer = torch.optim.AdamW([*model.parameters(), *logvar.parameters()], lr=1e-4, fused=device.type == "cuda")
    net = compile_network(model, compile_mode) if compile_mode else model
    shape = (cfg.model.channels, cfg.model.image_size, cfg.model.image_size)
    out: Numbers = {"params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 1)}
    steps, warm = (2, 1) if tiny else (20, 8)
    captions = ["x"] * batch
    for i in range(warm + steps):
        if i == warm:
            sync(device)
            tic = time.perf_counter()
        x = torch.randn(batch, *shape, device=device)
        rewards = torch.rand(batch, len(cfg.rewards.names))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = flow_matching_loss(net, logvar, x, captions, rewards, text, cfg.rewards, cfg.objective,  # type: ignore[arg-type]
                                      generator_for("bench", i))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync(device)
    out[f"train_samples_per_s_B{batch}"] = round(batch * steps / (time.perf_counter() - tic), 1)
    if device.type == "cuda":
        out[f"train_peak_mem_GiB_B{batch}"] = peak_gib()
        del optimizer
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

    n_images, n_steps = (2, 3) if tiny else (64, 50)
    positive, negative = guidance_branches(cfg.sample, cfg.rewards.names)
    for _ in range(2):  # the second pass is timed
        sync(device)
        tic = time.perf_counter()
        sample(model, text, ["x"] * n_images, list(range(n_images)), shape, positive=positive,
               negative=negative, guidance_scale=8.0, steps=n_steps,
               device=device, precision="auto", compile_mode=sample_compile_mode)
        sync(device)
    out[f"sample_images_per_s_B{n_images}_{n_steps}steps_cfg"] = round(n_images / (time.perf_counter() - tic), 2)
    if device.type == "cuda":
        out[f"sample_peak_mem_GiB_B{n_images}"] = peak_gib()
    return out


def run_process(command: list[str], env: dict[str, str], cwd: Path | None = None) -> Numbers:
    """Run one side in a fresh process; its last stdout line is its JSON, plus the process's peak RSS."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if proc.returncode:
            sys.exit(f"error: {' '.join(command)} failed (exit {proc.returncode}):\n{err.read()[-3000:]}")
        result = json.loads(out.read().strip().splitlines()[-1])
    numbers = {k: float(v) for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {**numbers, "peak_rss_MiB": round(usage.ru_maxrss / 1024, 1)}


def median(runs: Sequence[Numbers]) -> Numbers:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0] if all(k in r for r in runs)}


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["data"]:  # the data-feed benchmark (miro.bench_data)
        from miro.bench_data import main as data_main

        return data_main(argv[1:])
    if argv[:1] == ["feed"]:  # training fed from a store through the real loader (miro.bench_feed)
        from miro.bench_feed import main as feed_main

        return feed_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compile", action="store_true", help="torch.compile the network on both sides")
    parser.add_argument("--compile-mode", default="default", help="our training compile mode (optim.compile_mode)")
    parser.add_argument("--sample-compile-mode", default="default",
                        help="our sampling compile mode (sample.compile_mode; reduce-overhead = CUDA graphs)")
    parser.add_argument("--reference", type=Path, help="the authors' benchmark script, official_miro_throughput.py")
    parser.add_argument("--reference-site", type=Path, default=Path(".bench_ref"),
                        help="folder holding the authors' unpacked `miro` package (see the reference script's docstring)")
    parser.add_argument("--repeats", type=int, default=None, help="ours/official process pairs (default 1 on GPU, 3 on CPU)")
    parser.add_argument("--side", choices=["ours"], help=argparse.SUPPRESS)  # the child process of one measurement
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tiny = device.type == "cpu"
    batch = 4 if tiny else 128  # the reference's TINY=1 batch on a CPU
    if args.side == "ours":
        print(json.dumps(run_ours(tiny, batch, args.compile_mode if args.compile else None,
                                  args.sample_compile_mode if args.compile else None, device)))
        return
    if args.reference and not (args.reference.is_file() and (args.reference_site / "miro").is_dir()):
        sys.exit(f"error: the reference needs {args.reference} and the authors' package in {args.reference_site}/miro; "
                 "`nox -s bench` prepares both, or follow the reference script's docstring")
    repeats = args.repeats or (3 if tiny else 1)
    ours_cmd = [sys.executable, "-m", "miro.bench", "--side", "ours", "--compile-mode", args.compile_mode,
                "--sample-compile-mode", args.sample_compile_mode, *(["--compile"] if args.compile else [])]
    ref_env = {**os.environ, "MIRO_REF_SITE": str(args.reference_site.resolve()), "TINY": "1" if tiny else "0",
               "BATCHES": str(batch), "COMPILE": "1" if args.compile else "0"}
    ours, official, order = [], [], []
    for _ in range(repeats):
        ours.append(run_process(ours_cmd, dict(os.environ)))
        order.append("ours")
        if args.reference:
            official.append(run_process([sys.executable, str(args.reference.resolve())], ref_env, args.reference.resolve().parent))
            order.append("official")
    report: dict[str, object] = {
        "device": torch.cuda.get_device_name() if not tiny else "cpu",
        "config": "tiny (the reference's TINY=1; CPU numbers exercise the code path, compare only the ratios)" if tiny
        else "released 360.4M RIN, 128 text tokens, bf16 autocast",
        "torch": torch.__version__, "threads": torch.get_num_threads(), "compile": args.compile,
        "compile_mode": {"train": args.compile_mode, "sample": args.sample_compile_mode} if args.compile else None,
        "order": order, "statistic": f"median of {repeats}", "ours": median(ours)}
    if official:
        ref = median(official)
        report["official"] = ref
        report["ratio_ours_over_official"] = {k: round(v / ref[k], 3) for k, v in median(ours).items()
                                              if k in ref and k not in ("params_M", "text_tokens") and ref[k]}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
