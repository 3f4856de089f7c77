"""Throughput benchmark: a RIN training step and 50-step guided sampling at the released settings.

    python -m miro.bench [--compile] [--batch 128] [--reference ../shared/bench/official_miro_throughput.py]

On a GPU it measures the released network (360.4M parameters, bf16, 128 text tokens, batch 128) and
prints training samples/s, sampling images/s and peak memory as one JSON line. With --reference the
authors' own script runs in a separate process on the same device and the ratios ours/official are
added. On a CPU it runs a tiny configuration so the code path is exercised (numbers not comparable).
Text features are random tensors in both, as the reference uses precomputed T5 tokens.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from miro.config import RunConfig
from miro.nets.flow_model import LogVarianceHead, build_model
from miro.objective import flow_matching_loss
from miro.presets import paper
from miro.sample import Branch, sample
from miro.seeding import generator_for
from miro.text import TextEncoder


class RandomTextFeatures(TextEncoder):
    """Stands in for precomputed T5 tokens: fixed random features for every caption."""

    def __init__(self, dim: int, max_tokens: int) -> None:
        self.dim, self.max_tokens = dim, max_tokens

    def encode(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        feats = torch.randn(len(captions), self.max_tokens, self.dim, generator=generator_for("bench-text"))
        return feats, torch.ones(len(captions), self.max_tokens, dtype=torch.bool)


def bench_config(tiny: bool) -> RunConfig:
    cfg = paper(data="unread", text="unread", vae="unread")  # the network only: no file is opened
    if not tiny:
        return cfg
    return replace(cfg, model=replace(cfg.model, image_size=8, width=64, heads=4, data_dim=64, num_latents=48,
                                      rin_blocks=1, rin_layers_per_block=1, read_write_heads=4, cond_heads=4))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_ours(tiny: bool, batch: int, compile_net: bool, device: torch.device) -> dict[str, float | str]:
    cfg = bench_config(tiny)
    text_dim = 32 if tiny else 2048
    text = RandomTextFeatures(text_dim, 128)  # the reference times 128 text tokens
    model = build_model(cfg.model, cfg.rewards, cfg.objective, text_dim).to(device)
    logvar = LogVarianceHead().to(device)
    params = list(model.parameters()) + list(logvar.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=device.type == "cuda")  # the reference's optimizer
    net = torch.compile(model) if compile_net else model
    shape = (cfg.model.channels, cfg.model.image_size, cfg.model.image_size)
    out: dict[str, float | str] = {"params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 1)}
    dtype = torch.bfloat16
    steps, warm = (2, 1) if tiny else (20, 8)
    captions = ["x"] * batch
    for i in range(warm + steps):
        if i == warm:
            sync(device)
            tic = time.perf_counter()
        x = torch.randn(batch, *shape, device=device)
        rewards = torch.rand(batch, len(cfg.rewards.names))
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            loss = flow_matching_loss(net, logvar, x, captions, rewards, text, cfg.rewards, cfg.objective,  # type: ignore[arg-type]
                                      generator_for("bench", i))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync(device)
    out[f"train_samples_per_s_B{batch}"] = round(batch * steps / (time.perf_counter() - tic), 1)
    if device.type == "cuda":
        out[f"train_peak_mem_GiB_B{batch}"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)

    n_images, n_steps = (2, 3) if tiny else (64, 50)
    names = cfg.rewards.names
    for _ in range(2):  # the second pass is timed
        sync(device)
        tic = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            sample(model, text, ["x"] * n_images, list(range(n_images)), shape, positive=Branch(dict.fromkeys(names, 1.0)),
                   negative=Branch(dict.fromkeys(names, 0.0), null_caption=True), guidance_scale=8.0,
                   steps=n_steps, device=device)
        sync(device)
    out[f"sample_images_per_s_B{n_images}_{n_steps}steps_cfg"] = round(n_images / (time.perf_counter() - tic), 2)
    return out


def run_reference(script: Path, site: Path, tiny: bool, batch: int, compile_net: bool) -> dict[str, float | str]:
    """The authors' network in its own process (both packages are called `miro`)."""
    env = {**os.environ, "MIRO_REF_SITE": str(site), "BATCHES": str(batch), "TINY": "1" if tiny else "0",
           "COMPILE": "1" if compile_net else "0"}
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, check=True,
                            cwd=script.parent)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=None, help="training batch (default 128 on GPU, 4 on CPU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--reference", type=Path, help="path to official_miro_throughput.py to run in the same session")
    parser.add_argument("--reference-site", type=Path, default=Path(".bench_ref"),
                        help="folder holding the authors' unpacked `miro` package (see the reference script's docstring)")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tiny = device.type == "cpu"
    batch = args.batch or (4 if tiny else 128)
    report: dict[str, object] = {"device": torch.cuda.get_device_name() if tiny is False else "cpu (tiny config)",
                                 "torch": torch.__version__, "compile": args.compile,
                                 "ours": run_ours(tiny, batch, args.compile, device)}
    if args.reference:
        ref = run_reference(args.reference.resolve(), args.reference_site.resolve(), tiny, batch, args.compile)
        report["official"] = ref
        ours = report["ours"]
        assert isinstance(ours, dict)
        report["ratio_ours_over_official"] = {k: round(float(ours[k]) / float(ref[k]), 3)
                                              for k in ours if k in ref and k != "params_M"}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
