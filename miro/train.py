"""The MIRO training loop. To resume a run, run the same command again.

One optimizer step: for each micro-batch, draw the batch and its randomness from seeds named by
(run seed, step, micro-batch, rank), compute the flow-matching loss, backpropagate; then clip, step,
update the EMA, log, and checkpoint every `checkpoint_every` steps (atomically). Because nothing
random depends on call order, stop-and-resume gives the same weights as an uninterrupted run.
Under torch DDP (several processes) each rank trains on its own shard of every batch and rank 0 writes.
"""
from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from miro.checkpoint import checkpoint_dirs, load_checkpoint, load_strict, save_checkpoint
from miro.compilation import compile_network
from miro.config import RunConfig, to_dict
from miro.data.feature_store import StoredText
from miro.data.loader import Batch, TrainingBatches, training_batches
from miro.distributed import DistInfo, default_device, init_distributed
from miro.errors import MiroError
from miro.files import lock_folder, read_checked
from miro.latents import PosteriorNormaliser, build_latent_space, channel_scaling
from miro.manifest import build_manifest, write_json_atomic
from miro.nets.flow_model import FlowModel, LogVarianceHead, build_model
from miro.objective import flow_matching_loss
from miro.optim import build_optimizer, ema_decay, lr_factor, update_ema
from miro.run_log import RunLog, log_interval, training_identity
from miro.seeding import generator_for, seed_for
from miro.text import TextEncoder, build_text_encoder


class TrainingSet(Protocol):
    """Items are {"image": (C, H, W) in [-1, 1], "caption": str, "rewards": (N,) in [0, 1] in RewardConfig.names order}."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> dict[str, Any]: ...


# --------------------------------------------------------------------------------------------------
# helpers, each one idea
# --------------------------------------------------------------------------------------------------
FlowData = Callable[[torch.Tensor, "torch.Tensor | None", torch.Generator], torch.Tensor]


def data_encoders(cfg: RunConfig, dataset: TrainingSet, device: torch.device) -> tuple[TextEncoder, FlowData]:
    """The text encoder and the (images, posterior std, generator) -> flow-data map of a run, reading
    precomputed features when the dataset has them (then T5 and the VAE are never loaded: nothing is encoded
    twice). Precomputed latents are the unscaled posterior, normalised here exactly as the live VAE would."""
    features = getattr(dataset, "features", None)
    kinds = getattr(features, "kinds", [])
    text_encoder = features.stored_text(device) if "text" in kinds else build_text_encoder(cfg.text, device)  # type: ignore[union-attr]
    if "text" in kinds and text_encoder.max_tokens != cfg.text.max_tokens:
        raise MiroError(f"text.max_tokens = {cfg.text.max_tokens} but the precomputed captions were encoded at {text_encoder.max_tokens} tokens; set text.max_tokens={text_encoder.max_tokens} or precompute again")
    if "text" in kinds and cfg.rewards.scheme == "prompt":
        raise MiroError('rewards.scheme = "prompt" writes the rewards into each caption, which stored T5 features cannot encode; '
                        "precompute without a T5 (latents only) or choose another scheme")
    if "latent" in kinds:
        shape = tuple(dataset[0]["image"].shape)  # (C, h, w) of the stored posterior mean
        expected = (cfg.model.channels, cfg.model.image_size, cfg.model.image_size)
        if shape != expected:
            raise MiroError(f"precomputed latents are {shape} but model.channels, image_size give {expected}; set model.channels={shape[0]} model.image_size={shape[1]} or precompute at the right resolution")
        stored = features.encoders["latent"]  # type: ignore[union-attr]
        normalise = PosteriorNormaliser(*channel_scaling(cfg.latents.normalisation, shape[0],
                                                         cfg.latents.scaling_factor or stored["scaling_factor"],
                                                         stored["shift_factor"]), cfg.latents.sample_posterior)
        return text_encoder, normalise
    space = build_latent_space(cfg.latents, device)
    return text_encoder, lambda images, _std, generator: space.encode(images, generator)


def posterior_std(batch: Batch, device: torch.device) -> torch.Tensor | None:
    """The batch's stored posterior std (precomputed latents), to draw posterior samples from; else None."""
    return None if batch.latent_std is None else batch.latent_std.to(device, non_blocking=True).float()


def held_text(text_encoder: TextEncoder, batch: Batch) -> None:
    """Hand a batch's stored caption features to the stored-text encoder (no-op for a live encoder)."""
    if isinstance(text_encoder, StoredText):
        text_encoder.hold(batch.captions, batch.text, batch.text_tokens)  # type: ignore[arg-type]


def autocast(precision: str, device: torch.device) -> Any:
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def check_run_dir(run_dir: Path, config: dict[str, Any]) -> None:
    """A run folder belongs to one config once it holds a checkpoint: refuse to resume a different run
    into it (where curves go may change: miro.run_log). A folder with no checkpoint yet (a failed start) takes the new config."""
    path = run_dir / "config.json"
    if path.is_file() and checkpoint_dirs(run_dir):
        recorded = read_checked(path, lambda p: json.loads(p.read_text()), "restore it from a checkpoint's manifest.json (its \"config\")")
        previous, config = training_identity(recorded), training_identity(config)
        if previous != config:
            changed = sorted(k for k in set(previous) | set(config) if previous.get(k) != config.get(k))
            raise MiroError(f"{run_dir} holds a run with a different config (sections {', '.join(changed)} differ); use another output folder or restore the config")


# --------------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------------
def train(cfg: RunConfig, dataset: TrainingSet, run_dir: Path | str, *, stop_at: int | None = None,
          progress: bool = True, device: torch.device | None = None,
          on_checkpoint: Callable[[Path], None] | None = None, workers: int | None = None) -> Path:
    """Train (or resume) `cfg` on `dataset` in `run_dir` up to `stop_at` (default: optim.steps) steps.

    `workers`: data-loading processes (None: miro.data.loader.default_workers); what is trained does not depend
    on it. Returns the folder of the last checkpoint.
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
        _writer = lock_folder(run_dir, f"miro train {cfg.name}")  # held until train() returns: a second writer is refused
        check_run_dir(run_dir, config)
        write_json_atomic(run_dir / "config.json", config)

    text_encoder, to_flow_data = data_encoders(cfg, dataset, device)
    torch.manual_seed(seed_for("init", cfg.seed))  # same initial weights on every rank and every rerun
    model: FlowModel = build_model(cfg.model, cfg.rewards, cfg.objective, text_encoder.dim).to(device)
    logvar = LogVarianceHead(time_input=cfg.model.time_input).to(device) if cfg.objective.uncertainty_weighting else None
    trainable = nn.ModuleDict({"model": model, **({"logvar": logvar} if logvar is not None else {})})
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = build_optimizer(trainable, opt_cfg, device)
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
    if opt_cfg.compile:  # calls go through the compiled wrapper; `model` (plain keys) is what is saved
        net = compile_network(net, opt_cfg.compile_mode, fullgraph=dist_info.world == 1)
    manifest = build_manifest(config, seed=cfg.seed, device=device, extra={"world_size": dist_info.world})
    n_rewards = len(cfg.rewards.conditioned)
    bar = tqdm(range(start, end), initial=start, total=end, disable=not (progress and dist_info.is_main),
               desc=cfg.name, unit="step", dynamic_ncols=True)
    run_log = RunLog(cfg, run_dir, start) if dist_info.is_main else None
    every = log_interval(cfg)
    last = existing[-1] if existing else run_dir
    order = TrainingBatches(start, end, opt_cfg.grad_accum, dist_info.world, dist_info.rank, micro, len(dataset), cfg.seed)
    batches = training_batches(dataset, order, n_rewards, cfg.text.max_tokens, workers, pin_memory=device.type == "cuda")
    tic, seen, waited = time.perf_counter(), 0, 0.0
    for step in bar:
        trainable.train()
        total = torch.zeros((), device=device)  # the step's loss, kept on the device: read only when logged
        for m in range(opt_cfg.grad_accum):
            wait_from = time.perf_counter()
            batch = next(batches)  # the micro-batch at this rank's position (miro.data.loader.TrainingBatches)
            waited += time.perf_counter() - wait_from
            held_text(text_encoder, batch)
            generator = generator_for("train", cfg.seed, step, m, dist_info.rank)
            sync = nullcontext() if m == opt_cfg.grad_accum - 1 or dist_info.world == 1 else net.no_sync()  # type: ignore[operator]
            with sync, autocast(opt_cfg.precision, device):
                images = batch.images.to(device, non_blocking=True).float()
                x = to_flow_data(images, posterior_std(batch, device), generator)  # (B, C, H, W) data the flow runs on
                loss = flow_matching_loss(net, logvar, x, batch.captions, batch.rewards, text_encoder, cfg.rewards, cfg.objective, generator)  # type: ignore[arg-type]
            scaler.scale(loss / opt_cfg.grad_accum).backward()
            total += loss.detach() / opt_cfg.grad_accum
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable.parameters(), opt_cfg.grad_clip or float("inf"))
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        update_ema(ema, model, ema_decay(step, opt_cfg))
        seen += opt_cfg.batch_size
        done = step + 1

        if done % every == 0 or done == end:
            elapsed, step_loss = time.perf_counter() - tic, float(total)
            rate, data_wait = seen / elapsed, waited / elapsed  # data_wait: the share of time spent waiting for batches
            bar.set_postfix(loss=f"{step_loss:.4f}", samples_s=f"{rate:.0f}", data_wait=f"{data_wait:.0%}")
            if run_log:
                run_log.write({"step": done, "loss": step_loss, "grad_norm": float(grad_norm),
                               "lr": float(schedule.get_last_lr()[0]), "samples_per_s": rate, "data_wait": data_wait})
            tic, seen, waited = time.perf_counter(), 0, 0.0
        if dist_info.is_main and (done % cfg.checkpoint_every == 0 or done == end):
            last = save_checkpoint(
                run_dir, done, train=trainable.state_dict(), ema=ema.state_dict(),
                optimizer={"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()},
                state={"samples_seen": done * opt_cfg.batch_size}, manifest=manifest, keep=cfg.keep_checkpoints,
            )
            if on_checkpoint:
                on_checkpoint(last)
    if run_log:
        run_log.close()
    if dist_info.world > 1:
        torch.distributed.barrier()
    return last if dist_info.is_main else run_dir
