"""Precompute VAE latents and T5 caption features once, so training never runs the frozen encoders.

Latents: a diffusers AutoencoderKL from a local folder (the SDXL VAE at real scale). Images are fitted to
`resolution` (shorter side resized, center crop; a JPEG is decoded at the smallest scale that still covers it),
mapped to [-1, 1] and encoded; the posterior mean and std are stored unscaled, with the VAE's scaling_factor (and
shift_factor, when its config has one) in the store's encoder record; the trainer normalises them as the run's
config says (the VAE's factor or the released per-channel statistics, posterior mean or sample).
Text: a transformers T5EncoderModel and its tokenizer from one local folder. Captions are tokenized as the released
pipeline does at inference (truncated to `max_tokens`, which the run's text.max_tokens must equal); the hidden
states of the real tokens are stored (T5's attention masks the padding, so they do not depend on it), and the
training step pads them to max_tokens again (miro.data.feature_store.StoredText). The released training code
stores trimmed states too and pads at collate time, to 256 tokens; its pipeline encodes prompts at max_text_len =
77, the length the paper preset trains at, so training and sampling see captions encoded the same way.

Images are read and decoded in DataLoader worker processes (miro.data.decode), the encoders run batched in the
main process, and records go to the feature store (miro.data.feature_store: one append-only shard per task,
committed every `commit_every` samples, resumed by running the same command). The per-channel sums of the latent
means are kept while writing, for the dataset's latent statistics (latent_stats.json). A sample whose image cannot
be read is recorded as failed with the reason; more than `max_failed` of a shard failing stops the command with
an error once the shard is written, and a shard that stores nothing is an error too.

Fingerprint of an encoder: its config (minus paths and library versions) and the content identity of every other
file of its folder (miro.content: tokenizer files whole, multi-GB weights by their size and 16 spread blocks).
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from miro.content import file_identity
from miro.data.decode import Decoded, task_batches
from miro.data.feature_store import STORED, FeatureWriter, Layout, write_null_text
from miro.data.sources import SourceProblem
from miro.errors import MiroError
from miro.latents import VaeSpace
from miro.text import T5TextEncoder

_IGNORED_CONFIG_KEYS = {"_name_or_path", "_diffusers_version", "transformers_version", "_commit_hash", "architectures", "torch_dtype"}
SHOWN_FAILURES = 3  # failed samples named in the summary line


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
    max_failed: float = 0.01  # fraction of a shard's samples that may be unreadable before the command fails
    workers: int | None = None  # decoder processes (None: one per core beside this one, at most 8)

    def __post_init__(self) -> None:
        if not (self.vae_path or self.text_path):
            raise MiroError("precompute has nothing to do: set vae_path (latents) and/or text_path (T5 embeddings)")
        for name in ("resolution", "max_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise MiroError(f"precompute {name} = {getattr(self, name)} must be >= 1")
        if self.dtype not in ("float32", "float16", "bfloat16"):
            raise MiroError(f'precompute dtype = "{self.dtype}" must be float32, float16 or bfloat16')
        if not 0 <= self.max_failed <= 1:
            raise MiroError(f"precompute max_failed = {self.max_failed} must lie in [0, 1] (a fraction of the shard's samples)")
        if self.workers is not None and self.workers < 0:
            raise MiroError(f"precompute workers = {self.workers} must be >= 0 (0 decodes in this process)")


def _file_fingerprint(folder: Path) -> dict[str, Any]:
    """Config (minus volatile keys) and the content identity of every other file (miro.content.file_identity:
    tokenizer files whole, large weights by their size and spread blocks)."""
    record: dict[str, Any] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        if path.name == "config.json":
            record[path.name] = {k: v for k, v in json.loads(path.read_text()).items() if k not in _IGNORED_CONFIG_KEYS}
        else:
            record[path.name] = file_identity(path)
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


def encode_captions(encoder: T5TextEncoder, captions: Sequence[str]) -> list[torch.Tensor]:
    """Captions -> each caption's T5 hidden states (tokens, D) float32, trimmed to its real tokens."""
    hidden, mask = encoder.encode(captions)
    return [h[: int(m.sum())].cpu() for h, m in zip(hidden, mask)]


def _encoder_meta(options: PrecomputeOptions, vae: VaeSpace | None) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if options.vae_path:
        settings = {"resolution": options.resolution, "dtype": options.dtype}
        files = _file_fingerprint(Path(options.vae_path))
        meta["latent"] = {"fingerprint": _fingerprint({"files": files, **settings}), "path": options.vae_path, **settings,
                          "scaling_factor": vae.scaling_factor if vae else 0.0, "shift_factor": vae.shift_factor if vae else 0.0}
    if options.text_path:
        settings = {"max_tokens": options.max_tokens, "dtype": options.dtype}
        files = _file_fingerprint(Path(options.text_path))
        meta["text"] = {"fingerprint": _fingerprint({"files": files, **settings}), "path": options.text_path, **settings}
    return meta


def _layout(options: PrecomputeOptions, vae: VaeSpace | None, text: T5TextEncoder | None) -> Layout:
    latent = None
    if vae is not None:
        factor = vae.downsample
        if options.resolution % factor:
            raise MiroError(f"precompute resolution = {options.resolution} is not a multiple of the VAE's downsampling factor {factor}; "
                            f"use a resolution such as {max(factor, options.resolution // factor * factor)}")
        side = options.resolution // factor
        latent = (2, int(vae.vae.config.latent_channels), side, side)
    return Layout(latent, text.dim if text else None, options.max_tokens)


@dataclass
class PrecomputeReport:
    """What one precompute() call did; `line()` is the one-line summary printed at the end."""

    path: Path
    samples: int = 0  # samples encoded by this call
    skipped: int = 0  # samples of the shard already stored or failed before
    failed: dict[int, str] = field(default_factory=dict)  # this shard's failed samples (all runs) and why
    stored: int = 0  # samples the shard holds
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.samples / self.seconds if self.seconds > 0 else 0.0
        failed = self.failed
        named = "; ".join(f"sample {sid}: {why}" for sid, why in list(failed.items())[:SHOWN_FAILURES])
        return (f"precomputed {self.samples} samples ({self.skipped} already done) -> {self.path} in {self.seconds:.1f} s "
                f"({rate:.1f} samples/s); the shard holds {self.stored}, failed {len(failed)}{': ' + named if named else ''}"
                f"{' ...' if len(failed) > SHOWN_FAILURES else ''}{'; source problems: ' + '; '.join(self.problems) if self.problems else ''}")


def _encode_batch(batch: Sequence[Decoded], vae: VaeSpace | None, text: T5TextEncoder | None, writer: FeatureWriter) -> None:
    """Encode a batch's readable samples and add them to the shard; an unreadable one fails its own row only."""
    ready = [d for d in batch if not d.error]
    for d in batch:
        if d.error:
            writer.fail(d.sample_id, d.error)
    if not ready:
        return
    latents = texts = None
    if vae is not None:
        mean, std = encode_images(vae, torch.stack([d.pixels() for d in ready]))
        latents = torch.stack([mean, std], dim=1).numpy().astype(STORED)  # (B, 2, C, h, w)
    if text is not None:
        texts = [h.numpy().astype(STORED) for h in encode_captions(text, [d.caption for d in ready])]
    for i, d in enumerate(ready):
        writer.add(d.sample_id, None if latents is None else latents[i], None if texts is None else texts[i])


def precompute(
    source: Any,
    out_dir: str | Path,
    options: PrecomputeOptions,
    shard_index: int = 0,
    shard_count: int = 1,
    progress: bool = True,
    commit_every: int = 1024,
) -> PrecomputeReport:
    """Encode the latents and/or caption features of task `shard_index` of `shard_count` into the store `out_dir`,
    skipping samples already stored; the last shard to complete writes the store's index."""
    if not 0 <= shard_index < shard_count:
        raise MiroError(f"shard_index = {shard_index} must lie in [0, shard_count = {shard_count})")
    out = Path(out_dir)
    vae = load_vae(options.vae_path, options.device, options.dtype) if options.vae_path else None
    text = load_text_encoder(options.text_path, options.max_tokens, options.device, options.dtype) if options.text_path else None
    encoders = _encoder_meta(options, vae)
    writer = FeatureWriter(out, shard_index, shard_count, encoders, _layout(options, vae, text))
    report = PrecomputeReport(out, skipped=len(writer.done))
    start, since_commit = time.perf_counter(), 0
    bar = tqdm(unit="img", desc=f"precompute {out.name} {shard_index}/{shard_count}", disable=not progress)
    try:
        for batch in task_batches(source, shard_index, shard_count, options.batch_size, skip=frozenset(writer.done),
                                  size=options.resolution, images=vae is not None, workers=options.workers):
            report.problems += [b.message for b in batch if isinstance(b, SourceProblem)]
            decoded = [b for b in batch if isinstance(b, Decoded)]
            _encode_batch(decoded, vae, text, writer)
            report.samples += len(decoded)
            since_commit += len(decoded)
            bar.update(len(decoded))
            if since_commit >= commit_every:
                writer.commit()
                since_commit = 0
    finally:
        bar.close()
        writer.commit()  # whatever happened, keep every finished record
    if text is not None:
        null = encode_captions(text, [""])[0]
        write_null_text(out, null.numpy(), encoders["text"]["fingerprint"])  # caption dropout trains on it
    writer.finish()
    report.seconds = time.perf_counter() - start
    report.stored, report.failed = writer.commit_record["rows"], {int(k): v for k, v in writer.commit_record["failed"].items()}
    if progress:
        tqdm.write(report.line(), file=sys.stderr)  # stdout stays free for machine-readable output
    _check_losses(report, options.max_failed, shard_index, shard_count)
    return report


def _check_losses(report: PrecomputeReport, max_failed: float, shard: int, count: int) -> None:
    """A shard that stored nothing, read a damaged tar, or lost more than `max_failed` of its samples fails (its
    records are kept)."""
    failed = report.failed
    total = report.stored + len(failed)
    where = f"precompute shard {shard}/{count} ({report.path})"
    if total == 0:
        raise MiroError(f"{where} found no samples to encode{': ' + '; '.join(report.problems) if report.problems else ''}; "
                        "check --source / --path and the shard count")
    if report.problems:  # a truncated tar hides the samples after the damage: none of them is counted
        raise MiroError(f"{where}: {report.problems[0]}; the samples before the damage are stored: replace or remove the "
                        "damaged shard and rerun")
    if report.stored == 0:
        raise MiroError(f"{where} stored nothing: all {total} samples failed (first: {next(iter(failed.values()))}); fix the data and rerun")
    if len(failed) > max_failed * total:
        first = "; ".join(f"sample {sid}: {why}" for sid, why in list(failed.items())[:SHOWN_FAILURES])
        raise MiroError(f"{where}: {len(failed)} of {total} samples ({len(failed) / total:.1%}) could not be read, more than the "
                        f"allowed {max_failed:.1%} (first: {first}); what was read is stored: fix or remove those samples and rerun, "
                        "or allow more with --max-failed")
