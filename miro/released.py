"""Import a released MIRO checkpoint folder (the files `MiroPipeline.from_pretrained` reads) as one of our runs.

    python -m miro import-released DIR --out RUN --text-encoder FLAN_T5_XL_DIR --vae SDXL_VAE_DIR

DIR holds config.json, model.safetensors and uncond_embedding.npy (`nicolas-dufour/miro`, or one variant
subfolder of `nicolas-dufour/miro-ablations`, downloaded beforehand: nothing is fetched here); a DIR whose
subfolders hold them (the ablations repository) imports each variant into RUN/<variant>. RUN becomes a run
folder with one checkpoint, read by `miro sample`, `harness.evaluation` and the sweep like any trained run:
the released network renamed into our layout, its reward keys mapped to our scorer names, the stored
negative embedding used as the null caption, and its sampling time grid (config.json's `scheduler`) as our
`sample.time_shift`. The released network reads gamma = 1 - t (`time_input = gamma`).
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from miro.checkpoint import save_checkpoint
from miro.config import LatentConfig, ModelConfig, RewardConfig, RunConfig, TextConfig, to_dict
from miro.errors import MiroError
from miro.files import read_checked
from miro.manifest import build_manifest, write_json_atomic
from miro.presets import paper

FILES = ("config.json", "model.safetensors", "uncond_embedding.npy")
NULL_EMBEDDING = "uncond_embedding.npy"  # copied into the run folder, the null caption of every branch

# released coherence key -> our scorer name (released pipeline COHERENCE_KEYS; "clip_score" is the paper's
# CLIP-score reward, our `jina_clip` as in the `paper` preset)
REWARD_NAMES = {
    "clip_score": "jina_clip", "aesthetic_score": "aesthetic", "image_reward_score": "image_reward",
    "pick_a_score_score": "pickscore", "hpsv2_score": "hpsv2", "vqa_score": "vqascore", "sciscore_score": "sciscore",
}
RELEASED_COND_HEADS = 16  # CADRINTextCond builds its two condition blocks with 16 heads whatever the config says
# MiroPipeline.from_pretrained's LinearScheduler arguments when config.json has no "scheduler" block
RELEASED_SCHEDULER = {"start": 1, "end": 0, "clip_min": 1e-9}
# a clamp of gamma at pure noise up to this moves no float32 step of a grid starting at gamma = 0
CLIP_MIN_UNSEEN = 1e-6

# released module path -> ours, applied in order to every key (the blocks share their inner names)
_BLOCK = [
    (r"\.initial_to_ln\.", ".norm1."), (r"\.initial_ln\.", ".norm1."), (r"\.middle_ln\.", ".norm2."),
    (r"\.(ca|sa)\.", ".attn."), (r"\.ffn\.linear_packed\.", ".ffn.packed."), (r"\.ffn\.linear_out\.", ".ffn.out."),
    (r"\.ffn\.linear_1\.", ".ffn.fc1."), (r"\.ffn\.linear_2\.", ".ffn.fc2."),
    (r"\.layer_scale_1$", ".scale1"), (r"\.layer_scale_2$", ".scale2"),
]
_EMBEDDER = [(r"\.encode_time\.", ".features."), (r"\.map_time_input\.", ".fc1."), (r"\.map_time_output\.", ".fc2.")]
_TOP = [
    (r"^patch_extractor\.", "backbone.patch_in."), (r"^data_pos_embedding$", "backbone.data_pos"),
    (r"^data_ln\.", "backbone.data_norm."), (r"^latents$", "backbone.latents"),
    (r"^time_embedder\.", "time_embed."), (r"^ln_previous_1\.", "backbone.prev_norm_in."),
    (r"^linear_previous\.linear_1\.", "backbone.prev_mlp.fc1."), (r"^linear_previous\.linear_2\.", "backbone.prev_mlp.fc2."),
    (r"^ln_previous_2\.", "backbone.prev_norm_out."), (r"^rin_blocks\.(\d+)\.retrieve_cond\.", r"backbone.blocks.\1.read_cond."),
    (r"^rin_blocks\.(\d+)\.retriever_ca\.", r"backbone.blocks.\1.read."), (r"^rin_blocks\.(\d+)\.processer_sa\.", r"backbone.blocks.\1.compute."),
    (r"^rin_blocks\.(\d+)\.writer_ca\.", r"backbone.blocks.\1.write."), (r"^map_tokens_to_patches\.0\.", "backbone.out_norm."),
    (r"^map_tokens_to_patches\.1\.", "backbone.patch_out."), (r"^transformers_blocks\.", "condition.blocks."),
    (r"^coherence_positional_embedding$", "condition.reward_tokens.position"),
    (r"^map_text_tokens\.", "condition.map_text."), (r"^text_registers$", "condition.registers"),
]
_DROPPED = re.compile(r"(attention_mask_dummy|^registers_coherence_mask|^cond_mask)$")  # constant all-True masks


def network_state(released: dict[str, torch.Tensor], coherence_keys: list[str]) -> dict[str, torch.Tensor]:
    """The released `network.*` weights (prefix stripped) renamed into our FlowModel's state dict."""
    out: dict[str, torch.Tensor] = {}
    index = {f"{k}_coherence": i for i, k in enumerate(coherence_keys)}
    for key, value in released.items():
        if _DROPPED.search(key):
            continue
        new = key
        embedder = re.match(r"^coherence_embedder\.([^.]+)\.", new)
        if embedder:
            new = f"condition.reward_tokens.embedders.{index[embedder.group(1)]}." + new[embedder.end():]
        for pattern, repl in _TOP:
            new = re.sub(pattern, repl, new)
        for pattern, repl in _BLOCK + _EMBEDDER:
            new = re.sub(pattern, repl, new)
        out[new] = value
    return out


def logvar_state(released: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The released preconditioning's `logvar_proj` (Fourier, Linear) as our LogVarianceHead."""
    rename = {"logvar_proj.0.freqs": "features.freqs", "logvar_proj.0.phases": "features.phases",
              "logvar_proj.1.weight": "linear.weight", "logvar_proj.1.bias": "linear.bias"}
    return {rename[k]: v for k, v in released.items() if k in rename}


def _number(block: dict[str, Any], key: str) -> float:
    value = block.get(key, RELEASED_SCHEDULER.get(key, 1.0))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise MiroError(f"config.json scheduler.{key} = {value!r} is not a number; fix the released config.json")
    return float(value)


def time_shift(released: dict[str, Any]) -> float:
    """Our `sample.time_shift` for the released sampling grid, or a one-line refusal of one we cannot sample on.

    The released LinearScheduler(start, end, shift, clip_min) gives step i of n the signal level
    gamma_i = f_s(i / n), with f_s(u) = s u / (1 + (s - 1) u) when s > 1 (no shift otherwise) and gamma clamped
    to >= clip_min. Our grid runs t from 1 to 0 with f_shift applied to t; since 1 - f_s(u) = f_{1/s}(1 - u),
    t_i = 1 - gamma_i is our grid with shift 1/s: the same times, the shift applied from the other end.
    """
    block = released.get("scheduler", RELEASED_SCHEDULER)
    if not isinstance(block, dict):
        raise MiroError(f"config.json scheduler = {block!r} is not a table of LinearScheduler arguments; fix the released config.json")
    unknown = sorted(set(block) - {"start", "end", "shift", "clip_min"})
    if unknown:
        raise MiroError(f"config.json scheduler has {unknown}, which the released LinearScheduler does not take (start, end, "
                        "shift, clip_min); fix the released config.json")
    start, end, shift, clip_min = (_number(block, k) for k in ("start", "end", "shift", "clip_min"))
    if (start, end) != (1.0, 0.0):
        raise MiroError(f"config.json scheduler runs gamma from {start:g} to {end:g}; only the released range (start 1, end 0) "
                        "has a time grid here: import a checkpoint with that scheduler")
    if clip_min > CLIP_MIN_UNSEEN:
        raise MiroError(f"config.json scheduler.clip_min = {clip_min:g} clamps the first steps of the grid, which the sampler here "
                        f"cannot reproduce (up to {CLIP_MIN_UNSEEN:g} changes nothing): import a checkpoint with a smaller clip_min")
    return 1.0 / shift if shift > 1 else 1.0  # the released scheduler applies a shift only above 1


def run_config(released: dict[str, Any], name: str, text_path: str, vae_path: str, null_embedding: str) -> RunConfig:
    """Our RunConfig for a released config.json: the `paper` preset with the checkpoint's own sizes."""
    net, pre = released["network"], released.get("preconditioning", {})
    for key, want in (("use_cond_rin_block", True), ("concat_cond_token_to_latents", False), ("use_self_conditioning", True)):
        if net.get(key, not want) != want:
            raise MiroError(f"config.json network.{key} = {net.get(key)!r}; only the released MIRO layout ({key} = {want}) can be imported")
    keys = list(net["coherence_keys"])
    unknown = [k for k in keys if k not in REWARD_NAMES]
    if unknown:
        raise MiroError(f"config.json names rewards {unknown} that have no scorer here; known: {', '.join(REWARD_NAMES)}")
    base = paper(data="unread", text=text_path, vae=vae_path)  # an evaluate-only run: its data is never read
    post = released.get("data_preprocessing", released.get("postprocessing", {}))
    channel_wise = bool(post.get("channel_wise_normalisation", False))
    latents = LatentConfig(space="vae", vae_path=vae_path, normalisation="sdxl_channel_wise" if channel_wise else "vae_config",
                           scaling_factor=0.0 if channel_wise else 1 / 0.13025,  # released VAE_STATS["sdxl"]["scale"], inverted
                           sample_posterior=bool(post.get("vae_sample", False)))
    model = ModelConfig(backbone="rin", image_size=int(net["data_size"]), channels=int(net["num_input_channels"]),
                        patch_size=int(net["patch_size"]), width=int(net["latents_dim"]), heads=int(net.get("compute_heads", 16)),
                        mlp_ratio=int(net.get("latent_mlp_multiplier", 4)), data_dim=int(net["data_dim"]),
                        num_latents=int(net["num_latents"]), rin_blocks=int(net["num_blocks"]),
                        rin_layers_per_block=int(net["num_processing_layers"]), read_write_heads=int(net.get("read_write_heads", 16)),
                        text_registers=int(net.get("num_text_registers", 16)), cond_blocks=2, cond_heads=RELEASED_COND_HEADS,
                        time_input="gamma")
    rewards = RewardConfig(names=tuple(REWARD_NAMES[k] for k in keys), scheme="tokens",
                           dropout_strategy=str(net.get("dropout_strategy", "binomial")),
                           dropout_p=float(net.get("coherence_dropout", 0.0)), caption_dropout=base.rewards.caption_dropout,
                           bins=base.rewards.bins)
    objective = replace(base.objective, sigma_data=float(pre.get("sigma_data", 0.5)),
                        uncertainty_weighting=bool(pre.get("do_gradnorm_reweighting", True)))
    text = TextConfig(encoder="t5", path=text_path, max_tokens=int(released.get("max_text_len", 77)), null_embedding=null_embedding)
    sample = replace(base.sample, time_shift=time_shift(released))
    return replace(base, name=name, rewards=rewards, text=text, latents=latents, model=model, objective=objective, sample=sample)


def read_released(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise MiroError(f"{folder} lacks {', '.join(missing)}; download the folder first, e.g. `huggingface-cli download nicolas-dufour/miro --local-dir {folder}`")
    fix = "download the released folder again (huggingface-cli download nicolas-dufour/miro)"
    config = read_checked(folder / "config.json", lambda p: json.loads(p.read_text()), fix)
    if not isinstance(config, dict) or not isinstance(config.get("network"), dict):
        raise MiroError(f"{folder / 'config.json'} has no \"network\" table, so it is not a released MIRO config; {fix}")
    null = read_checked(folder / NULL_EMBEDDING, np.load, fix)
    if null.ndim != 2 or null.shape[1] != config["network"].get("label_dim"):
        raise MiroError(f"{folder / NULL_EMBEDDING} holds an array of shape {null.shape}, not (tokens, {config['network'].get('label_dim')}) "
                        f"(network.label_dim); {fix}")
    return config, read_checked(folder / "model.safetensors", lambda p: load_file(str(p)), fix)


def _released_run_config(released: dict[str, Any], folder: Path, text_path: str, vae_path: str, null_embedding: str) -> RunConfig:
    try:
        return run_config(released, folder.name, text_path, vae_path, null_embedding)
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, MiroError):
            raise
        raise MiroError(f"{folder / 'config.json'} is not a released MIRO config ({type(error).__name__}: {error}); "
                        "download the released folder again") from None


def import_released(folder: Path | str, out: Path | str, *, text_path: str, vae_path: str, step: int = 0) -> Path:
    """Write the run folder `out` for the released checkpoint in `folder`; returns its checkpoint folder.
    Everything is read and checked before `out` is written."""
    from miro.nets.flow_model import LogVarianceHead, build_model
    from miro.rewards.real.weights import sha256_file

    folder, out = Path(folder), Path(out)
    released, weights = read_released(folder)
    cfg = _released_run_config(released, folder, text_path, vae_path, str((out / NULL_EMBEDDING).resolve()))
    text_dim = int(released["network"]["label_dim"])
    strip = {p: {k[len(p) + 1:]: v for k, v in weights.items() if k.startswith(p + ".")} for p in ("network", "preconditioning")}
    model = build_model(cfg.model, cfg.rewards, cfg.objective, text_dim)
    ours = network_state(strip["network"], list(released["network"]["coherence_keys"]))
    try:
        result = model.load_state_dict(ours, strict=False)
        head = LogVarianceHead(time_input="gamma")
        if cfg.objective.uncertainty_weighting and strip["preconditioning"]:
            head.load_state_dict(logvar_state(strip["preconditioning"]))
    except RuntimeError as error:  # a tensor of another shape than config.json's sizes give
        raise MiroError(f"{folder}/model.safetensors does not fit its config.json ({str(error).strip().splitlines()[-1].strip()}); "
                        "download the released folder again") from None
    if result.missing_keys or result.unexpected_keys:
        raise MiroError(f"{folder}/model.safetensors does not match the released layout: missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}")
    ema = {k: v.contiguous() for k, v in model.state_dict().items()}
    train = {f"model.{k}": v for k, v in ema.items()}
    if cfg.objective.uncertainty_weighting and strip["preconditioning"]:
        train.update({f"logvar.{k}": v for k, v in head.state_dict().items()})
    config = to_dict(cfg)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / NULL_EMBEDDING, out / NULL_EMBEDDING)
    write_json_atomic(out / "config.json", config)
    manifest = build_manifest(config, seed=cfg.seed, device=torch.device("cpu"), extra={
        "imported_from": str(folder.resolve()), "model_sha256": sha256_file(folder / "model.safetensors"), "evaluate_only": True,
        "released_scheduler": released.get("scheduler", RELEASED_SCHEDULER)})
    return save_checkpoint(out, step, train=train, ema=ema, optimizer={}, state={"imported": True},
                           manifest=manifest)


def released_folders(folder: Path | str) -> list[Path]:
    """`folder` itself when it holds a released checkpoint, else its subfolders that do (the ablation variants)."""
    folder = Path(folder)
    if (folder / "config.json").is_file():
        return [folder]
    found = sorted(p for p in folder.iterdir() if (p / "config.json").is_file()) if folder.is_dir() else []
    if not found:
        raise MiroError(f"{folder} holds no released checkpoint (config.json, model.safetensors, uncond_embedding.npy), nor subfolders that do; download it first")
    return found


def import_all(folder: Path | str, out: Path | str, *, text_path: str, vae_path: str, step: int = 0) -> list[Path]:
    """Import `folder` (one checkpoint) into `out`, or each variant subfolder into out/<variant>."""
    folders = released_folders(folder)
    if folders == [Path(folder)]:
        return [import_released(folder, out, text_path=text_path, vae_path=vae_path, step=step)]
    return [import_released(f, Path(out) / f.name, text_path=text_path, vae_path=vae_path, step=step) for f in folders]
