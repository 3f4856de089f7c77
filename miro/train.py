"""The MIRO training loop. To resume a run, run the same command again.

One optimizer step: for each micro-batch, draw the batch and its randomness from seeds named by
(run seed, step, micro-batch, rank), compute the flow-matching loss, backpropagate; then clip, step,
update the EMA, log, and checkpoint every `checkpoint_every` steps (atomically). Because nothing
random depends on call order, stop-and-resume gives the same weights as an uninterrupted run.
Under torch DDP (several processes) each rank trains on its own shard of every batch and rank 0 writes.
"""
from __future__ import annotations

import copy
import functools
import json
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from miro.checkpoint import checkpoint_dirs, load_checkpoint, load_strict, save_checkpoint
from miro.config import OptimConfig, RunConfig, to_dict
from miro.distributed import DistInfo, default_device, init_distributed
from miro.errors import MiroError
from miro.files import write_text_atomic
from miro.latents import build_latent_space
from miro.manifest import build_manifest, write_json_atomic
from miro.nets.flow_model import FlowModel, LogVarianceHead, build_model
from miro.objective import flow_matching_loss
from miro.seeding import generator_for, seed_for
from miro.text import build_text_encoder


class TrainingSet(Protocol):
    """Items are {"image": (C, H, W) in [-1, 1], "caption": str, "rewards": (N,) in [0, 1] in RewardConfig.names order}."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> dict[str, Any]: ...


# --------------------------------------------------------------------------------------------------
# helpers, each one idea
# --------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of one epoch, drawn once per epoch rather than once per batch."""
    return torch.randperm(n, generator=generator_for("epoch", seed, epoch))


def batch_indices(position: int, size: int, n: int, seed: int) -> list[int]:
    """Items `position .. position + size - 1` of an endless stream of seeded per-epoch permutations."""
    out: list[int] = []
    while len(out) < size:
        epoch, offset = divmod(position + len(out), n)
        out.extend(epoch_permutation(n, seed, epoch)[offset: offset + size - len(out)].tolist())
    return out


def collate(items: Sequence[dict[str, Any]], rewards: int) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    images = torch.stack([torch.as_tensor(it["image"], dtype=torch.float32) for it in items])
    captions = [str(it["caption"]) for it in items]
    scores = torch.stack([torch.as_tensor(it["rewards"], dtype=torch.float32)[:rewards] for it in items]) \
        if rewards else torch.zeros(len(items), 0)
    return images, captions, scores


def lr_factor(step: int, cfg: OptimConfig) -> float:
    """Linear warm-up to 1, then cosine decay to min_lr_ratio at the last step."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def build_optimizer(params: list[nn.Parameter], cfg: OptimConfig, device: torch.device) -> torch.optim.Optimizer:
    if cfg.optimizer == "lamb":
        from timm.optim import Lamb  # the released recipe; timm's maintained implementation

        return Lamb(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay,
                             fused=device.type == "cuda")


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """EMA with warm-up: the effective decay min(decay, (1 + step) / (10 + step)) lets short runs use it."""
    d = min(decay, (1 + step) / (10 + step))
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, 1 - d)
    for e_buf, m_buf in zip(ema.buffers(), model.buffers(), strict=True):
        e_buf.copy_(m_buf)


def autocast(precision: str, device: torch.device) -> Any:
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def check_run_dir(run_dir: Path, config: dict[str, Any]) -> None:
    """A run folder belongs to one config: refuse to resume a different run into it."""
    path = run_dir / "config.json"
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != config:
            changed = sorted(k for k in set(previous) | set(config) if previous.get(k) != config.get(k))
            raise MiroError(f"{run_dir} holds a run with a different config (sections {', '.join(changed)} differ); use another output folder or restore the config")


def trim_log(path: Path, step: int) -> None:
    """Drop log lines after `step` (written past the last checkpoint by a killed run), so a resume does not repeat them."""
    if path.is_file():
        lines = path.read_text().splitlines(keepends=True)
        kept = [line for line in lines if line.endswith("\n") and json.loads(line)["step"] <= step]
        if len(kept) != len(lines):
            write_text_atomic(path, "".join(kept))


# --------------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------------
def train(cfg: RunConfig, dataset: TrainingSet, run_dir: Path | str, *, stop_at: int | None = None,
          progress: bool = True, device: torch.device | None = None,
          on_checkpoint: Callable[[Path], None] | None = None) -> Path:
    """Train (or resume) `cfg` on `dataset` in `run_dir` up to `stop_at` (default: optim.steps) steps.

    Returns the folder of the last checkpoint.
    """
    run_dir = Path(run_dir)
    dist_info: DistInfo = init_distributed()
    device = device or default_device(dist_info)
    opt_cfg = cfg.optim
    micro = opt_cfg.batch_size // (dist_info.world * opt_cfg.grad_accum)
    if micro * dist_info.world * opt_cfg.grad_accum != opt_cfg.batch_size:
        raise MiroError(f"optim.batch_size = {opt_cfg.batch_size} is not divisible by world size {dist_info.world} x optim.grad_accum {opt_cfg.grad_accum}")
    end = min(stop_at or opt_cfg.steps, opt_cfg.steps)
    config = to_dict(cfg)
    if dist_info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        check_run_dir(run_dir, config)
        write_json_atomic(run_dir / "config.json", config)

    text_encoder = build_text_encoder(cfg.text, device)
    latent_space = build_latent_space(cfg.latents, device)
    torch.manual_seed(seed_for("init", cfg.seed))  # same initial weights on every rank and every rerun
    model: FlowModel = build_model(cfg.model, cfg.rewards, cfg.objective, text_encoder.dim).to(device)
    logvar = LogVarianceHead().to(device) if cfg.objective.uncertainty_weighting else None
    trainable = nn.ModuleDict({"model": model, **({"logvar": logvar} if logvar is not None else {})})
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = build_optimizer(list(trainable.parameters()), opt_cfg, device)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, opt_cfg))
    scaler = torch.amp.GradScaler(device.type, enabled=opt_cfg.precision == "fp16" and device.type == "cuda")

    start = 0
    existing = checkpoint_dirs(run_dir)
    if existing:
        ckpt = load_checkpoint(existing[-1])
        load_strict(trainable, ckpt.train, existing[-1])
        load_strict(ema, ckpt.ema, existing[-1])
        optimizer.load_state_dict(ckpt.optimizer["optimizer"])
        schedule.load_state_dict(ckpt.optimizer["schedule"])
        start = ckpt.step
    if start >= end:
        return existing[-1]

    net: nn.Module = DistributedDataParallel(model) if dist_info.world > 1 else model
    manifest = build_manifest(config, seed=cfg.seed, device=device, extra={"world_size": dist_info.world})
    n_rewards = len(cfg.rewards.conditioned)
    bar = tqdm(range(start, end), initial=start, total=end, disable=not (progress and dist_info.is_main),
               desc=cfg.name, unit="step", dynamic_ncols=True)
    if dist_info.is_main:
        trim_log(run_dir / "log.jsonl", start)
    log = (run_dir / "log.jsonl").open("a") if dist_info.is_main else None
    last = existing[-1] if existing else run_dir
    tic, seen = time.perf_counter(), 0
    for step in bar:
        trainable.train()
        total = 0.0
        for m in range(opt_cfg.grad_accum):
            position = ((step * opt_cfg.grad_accum + m) * dist_info.world + dist_info.rank) * micro
            images, captions, rewards = collate([dataset[i] for i in batch_indices(position, micro, len(dataset), cfg.seed)], n_rewards)
            generator = generator_for("train", cfg.seed, step, m, dist_info.rank)
            sync = nullcontext() if m == opt_cfg.grad_accum - 1 or dist_info.world == 1 else net.no_sync()  # type: ignore[operator]
            with sync, autocast(opt_cfg.precision, device):
                x = latent_space.encode(images.to(device))  # (B, C, H, W) data the flow runs on
                loss = flow_matching_loss(net, logvar, x, captions, rewards, text_encoder, cfg.rewards, cfg.objective, generator)  # type: ignore[arg-type]
            scaler.scale(loss / opt_cfg.grad_accum).backward()
            total += loss.item() / opt_cfg.grad_accum
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable.parameters(), opt_cfg.grad_clip or float("inf"))
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        update_ema(ema, model, opt_cfg.ema_decay, step)
        seen += opt_cfg.batch_size
        done = step + 1

        if done % cfg.log_every == 0 or done == end:
            rate = seen / (time.perf_counter() - tic)
            bar.set_postfix(loss=f"{total:.4f}", samples_s=f"{rate:.0f}")
            if log:
                log.write(json.dumps({"step": done, "loss": total, "grad_norm": float(grad_norm),
                                      "lr": schedule.get_last_lr()[0], "samples_per_s": rate}) + "\n")
                log.flush()
        if dist_info.is_main and (done % cfg.checkpoint_every == 0 or done == end):
            last = save_checkpoint(
                run_dir, done, train=trainable.state_dict(), ema=ema.state_dict(),
                optimizer={"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()},
                state={"samples_seen": done * opt_cfg.batch_size}, manifest=manifest, keep=cfg.keep_checkpoints,
            )
            if on_checkpoint:
                on_checkpoint(last)
    if log:
        log.close()
    if dist_info.world > 1:
        torch.distributed.barrier()
    return last if dist_info.is_main else run_dir
