"""Typed, frozen run configuration, validated when built.

A run is one `RunConfig`; presets live in `miro.presets` and ablation arms are `dataclasses.replace`
of a preset. Every check raises `MiroError` with one line naming the field, the value and what is
allowed, so a wrong value is refused before any compute is spent. `from_dict` builds a config from
plain data (JSON, command-line overrides) and refuses unknown keys with a "did you mean".
"""
from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_origin, get_type_hints

from miro.errors import MiroError, check_range, did_you_mean, unknown_name_error

SCHEMES = ("tokens", "adaln", "prompt", "none")
DROPOUT_STRATEGIES = ("binomial", "uniform", "none")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's


def _choice(section: str, name: str, value: object, allowed: Iterable[object]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        hint = did_you_mean(str(value), [str(a) for a in allowed])
        raise MiroError(f"{section}.{name} = {value!r} is not allowed{hint}; choose one of {', '.join(map(str, allowed))}")


def _in_range(section: str, name: str, value: float, low: float, high: float) -> None:
    check_range(f"{section}.{name}", value, low, high)


def _positive(section: str, name: str, value: float) -> None:
    check_range(f"{section}.{name}", value, 0, low_open=True)


@dataclass(frozen=True)
class RewardConfig:
    """Which rewards condition the model and how.

    scheme: `tokens` (paper: one token per reward), `adaln` (summed into the timestep embedding),
    `prompt` (reward levels written into the caption), `none` (the no-reward baseline; rewards ignored).
    dropout_strategy / dropout_p: reward dropout during training ("coherence dropout" in the released
    code); a dropped reward is a separate state, never the value 0.
    caption_dropout: probability of training on the null caption, with every reward at value 0 (released),
    the state of the default negative branch.
    """

    names: tuple[str, ...] = ()
    scheme: str = "none"
    dropout_strategy: str = "binomial"
    dropout_p: float = 0.0
    caption_dropout: float = 0.0
    bins: int = 64

    def __post_init__(self) -> None:
        _choice("rewards", "scheme", self.scheme, SCHEMES)
        _choice("rewards", "dropout_strategy", self.dropout_strategy, DROPOUT_STRATEGIES)
        _in_range("rewards", "dropout_p", self.dropout_p, 0.0, 1.0)
        _in_range("rewards", "caption_dropout", self.caption_dropout, 0.0, 1.0)
        if self.bins < 2:
            raise MiroError(f"rewards.bins = {self.bins} must be >= 2")
        if len(set(self.names)) != len(self.names):
            raise MiroError(f"rewards.names = {self.names} lists a reward twice; list each once")
        if self.scheme != "none" and not self.names:
            raise MiroError(f'rewards.scheme = "{self.scheme}" needs at least one reward in rewards.names; or use scheme "none"')

    @property
    def conditioned(self) -> tuple[str, ...]:
        """The rewards the network actually sees (none for the baseline)."""
        return () if self.scheme == "none" else self.names


@dataclass(frozen=True)
class TextConfig:
    """Text encoder: `shapes` (built-in, frozen word features) or `t5` (transformers T5EncoderModel)."""

    encoder: str = "shapes"
    path: str = ""  # local folder with the T5 weights and tokenizer
    max_tokens: int = 24
    dim: int = 64  # feature size of the built-in encoder; T5's comes from its config
    # a .npy (L, D) embedding used for the null caption "" with an all-ones mask (the released pipeline's
    # uncond_embedding.npy); empty: the encoder's own encoding of ""
    null_embedding: str = ""

    def __post_init__(self) -> None:
        _choice("text", "encoder", self.encoder, ("shapes", "t5"))
        _positive("text", "max_tokens", self.max_tokens)
        if self.encoder == "t5" and not self.path:
            raise MiroError('text.path is empty; set it to a local FLAN-T5 folder (config.json, model weights, tokenizer files) for text.encoder = "t5"')


@dataclass(frozen=True)
class LatentConfig:
    """Where the flow runs: `pixel` space or `vae` latents (diffusers AutoencoderKL, e.g. the SDXL VAE).

    normalisation: `vae_config` ((z - shift) * scaling_factor from the VAE's config, or `scaling_factor`)
    or `sdxl_channel_wise` (released: (z - mean_c) * 0.5 / std_c with the SDXL VAE's per-channel statistics,
    so latents have std sigma_data = 0.5). sample_posterior: train on a posterior sample (released) rather
    than the posterior mean.
    """

    space: str = "pixel"
    vae_path: str = ""
    scaling_factor: float = 0.0  # 0 means "read it from the VAE's config"
    normalisation: str = "vae_config"
    sample_posterior: bool = False

    def __post_init__(self) -> None:
        _choice("latents", "space", self.space, ("pixel", "vae"))
        _choice("latents", "normalisation", self.normalisation, ("vae_config", "sdxl_channel_wise"))
        if self.space == "vae" and not self.vae_path:
            raise MiroError('latents.vae_path is empty; set it to a local AutoencoderKL folder for latents.space = "vae"')


@dataclass(frozen=True)
class ModelConfig:
    """The network. `unet` (small conv U-Net) and `dit` (small transformer) are for CPU work; `rin` is the paper's.

    image_size / channels describe what the flow runs on (pixels, or VAE latents).
    width: transformer width (DiT), latent width (RIN), or condition width (U-Net); data_dim is RIN's patch-token width.
    unet_channels / attention_resolution: the U-Net's channels per level, and the largest feature-map side
    that gets self- and cross-attention.
    """

    backbone: str = "dit"
    image_size: int = 32
    channels: int = 3
    patch_size: int = 4
    width: int = 64
    depth: int = 4
    heads: int = 4
    mlp_ratio: int = 4
    # RIN only
    data_dim: int = 512
    num_latents: int = 256
    rin_blocks: int = 4
    rin_layers_per_block: int = 4
    read_write_heads: int = 16
    # U-Net only
    unet_channels: tuple[int, ...] = (16, 32, 64)
    attention_resolution: int = 8
    # conditioning sequence
    text_registers: int = 16
    cond_blocks: int = 2
    cond_heads: int = 4
    # what the time embedding reads: `t` (our convention, t = 1 noise) or the released `gamma` = 1 - t,
    # which released weights were trained with
    time_input: str = "t"

    def __post_init__(self) -> None:
        _choice("model", "backbone", self.backbone, ("unet", "dit", "rin"))
        _choice("model", "time_input", self.time_input, ("t", "gamma"))
        for name in ("image_size", "channels", "patch_size", "width", "depth", "heads", "mlp_ratio",
                     "data_dim", "num_latents", "rin_blocks", "rin_layers_per_block", "read_write_heads", "cond_heads"):
            _positive("model", name, getattr(self, name))
        if self.image_size % self.patch_size:
            raise MiroError(f"model.patch_size = {self.patch_size} must divide model.image_size = {self.image_size}")
        if isinstance(self.unet_channels, list):  # from JSON or the command line
            object.__setattr__(self, "unet_channels", tuple(self.unet_channels))
        if not self.unet_channels or any(c < 1 for c in self.unet_channels):
            raise MiroError(f"model.unet_channels = {self.unet_channels} must be a non-empty list of positive channel counts")
        if self.backbone == "unet":
            if self.image_size % 2 ** (len(self.unet_channels) - 1):
                raise MiroError(f"model.image_size = {self.image_size} must be divisible by 2^(levels - 1) = {2 ** (len(self.unet_channels) - 1)} for model.unet_channels = {self.unet_channels}")
            bad = [c for c in self.unet_channels if c % self.heads]
            if bad:
                raise MiroError(f"model.unet_channels = {self.unet_channels}: {bad} not divisible by model.heads = {self.heads}; use multiples of the heads")
        if self.width % self.heads or self.width % self.cond_heads:
            raise MiroError(f"model.width = {self.width} must be divisible by model.heads = {self.heads} and model.cond_heads = {self.cond_heads}")


@dataclass(frozen=True)
class ObjectiveConfig:
    """Rectified-flow objective. time_sampling: `uniform` (paper) or `logit_normal` (released code).

    self_conditioning: rate of RIN latent self-conditioning (released: 0.9; only backbones with latents).
    uncertainty_weighting: EDM2-style loss / exp(logvar(t)) + logvar(t) (released code).
    preconditioning: c_in / c_out input-output scaling with sigma_data (released code).
    """

    time_sampling: str = "uniform"
    self_conditioning: float = 0.0
    uncertainty_weighting: bool = False
    preconditioning: bool = False
    sigma_data: float = 0.5

    def __post_init__(self) -> None:
        _choice("objective", "time_sampling", self.time_sampling, ("uniform", "logit_normal"))
        _in_range("objective", "self_conditioning", self.self_conditioning, 0.0, 1.0)
        _positive("objective", "sigma_data", self.sigma_data)


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser, schedule and EMA (see miro.optim for the released recipe each field reproduces).

    Schedule: warm-up, then min_lr_ratio + (1 - min_lr_ratio) 0.5 (1 + cos(cosine_rate pi progress)); the
    released run has cosine_rate 0.8 and min_lr_ratio 0 (final lr 0.0955 x peak).
    ema_warmup: decay min(ema_decay, (1 + step) / (10 + step)) (the shapes default, for short runs);
    False is the released constant decay from a copy of the initial weights.
    compile / compile_mode: torch.compile the network for training (the released recipe trains compiled);
    see miro.compilation. Compiled and eager agree to float tolerance, not bitwise.
    """

    optimizer: str = "adamw"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    cosine_rate: float = 1.0
    grad_clip: float = 2.0
    ema_decay: float = 0.999
    ema_warmup: bool = True
    batch_size: int = 64
    grad_accum: int = 1
    steps: int = 1000
    precision: str = "fp32"
    compile: bool = False
    compile_mode: str = "default"

    def __post_init__(self) -> None:
        _choice("optim", "optimizer", self.optimizer, ("adamw", "lamb"))
        _choice("optim", "precision", self.precision, ("fp32", "bf16", "fp16"))
        _choice("optim", "compile_mode", self.compile_mode, COMPILE_MODES)
        _positive("optim", "lr", self.lr)
        for name in ("batch_size", "grad_accum", "steps"):
            _positive("optim", name, getattr(self, name))
        _in_range("optim", "ema_decay", self.ema_decay, 0.0, 1.0)
        _in_range("optim", "min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        _in_range("optim", "cosine_rate", self.cosine_rate, 0.0, 1.0)
        _positive("optim", "eps", self.eps)
        if self.warmup_steps < 0 or self.grad_clip < 0:
            raise MiroError("optim.warmup_steps and optim.grad_clip must be >= 0 (0 disables them)")
        _in_range("optim", "weight_decay", self.weight_decay, 0.0, 1.0)


@dataclass(frozen=True)
class DataConfig:
    """Training data: `shapes` (the embedded world, generated on the fly) or annotated `webdataset`/`folder` data.

    annotations / bin_edges: an annotation folder (its assembled annotations.parquet) or parquet file of reward
    scores, and the JSON bin edges stored under its name
    (written by annotation; empty for the shapes world, which annotates itself into the run folder;
    an empty bin_edges fits them on first use).
    features: a `miro precompute` folder of VAE latents and/or T5 caption embeddings; the trainer then
    reads them instead of running the encoders ("" encodes on the fly, fine for small data).
    world: the shapes world's distribution, as overrides of `miro.data.shapes.ShapesWorldConfig`'s defaults
    (`--set data.world.noise_prob=0.1`). Checked where the world is built (`miro.data.build.shapes_world`),
    which this leaf module does not import; its resolution is `resolution`. The shapes rewards are defined
    relative to their world (quality is a CDF over the world's own corruption mix), so scores of runs trained
    in different worlds are not on one scale: compare arms within a world.
    """

    source: str = "shapes"
    path: str = ""
    annotations: str = ""
    bin_edges: str = ""
    features: str = ""
    num_samples: int = 20000
    seed: int = 0
    resolution: int = 32
    world: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _choice("data", "source", self.source, ("shapes", "webdataset", "folder"))
        if self.world and self.source != "shapes":
            raise MiroError(f'data.world is set but data.source = "{self.source}"; it describes the shapes world only: clear data.world')
        if "resolution" in self.world:
            raise MiroError("data.world.resolution is set; the world's resolution is data.resolution: set that instead")
        _positive("data", "num_samples", self.num_samples)
        if self.source != "shapes" and not self.path:
            raise MiroError(f'data.path is empty; set it to the {self.source} location for data.source = "{self.source}"')
        for name in ("features", "annotations", "bin_edges"):
            if self.source == "shapes" and getattr(self, name):
                raise MiroError(f'data.{name} is set but data.source = "shapes" renders and annotates its own images; clear '
                                f'data.{name} or train on a folder / webdataset (data.source, data.path)')


@dataclass(frozen=True)
class SampleConfig:
    """Inference defaults: ODE solver, steps and multi-reward guidance (v = v_neg + g (v_pos - v_neg)).

    guidance_scale is g in the common form; the MIRO code's cfg_rate w is g - 1 (see miro.conventions).
    Targets map reward name -> value in [0, 1]; a reward left out of a mapping takes the released default,
    1 in the positive branch and 0 in the negative (miro.sample.guidance_branches, the one place they are made).
    negative_caption: `null` (empty caption, the pipeline), `same` (keep the caption: reward-only guidance) or
    `bank` (a caption drawn per sample from the prompts in `negative_bank`, the authors' GenEval protocol).
    precision: network calls under `bf16` autocast or in `fp32`; `auto` (default) is bf16 on CUDA, as released,
    and fp32 elsewhere. compile / compile_mode: torch.compile the network (`reduce-overhead` adds CUDA graphs).
    """

    solver: str = "euler"
    steps: int = 50
    guidance_scale: float = 4.0
    positive_targets: Mapping[str, float] = field(default_factory=dict)
    negative_targets: Mapping[str, float] = field(default_factory=dict)
    negative_caption: str = "null"
    negative_bank: str = ""  # text file, one prompt a line, for negative_caption = "bank"
    time_shift: float = 1.0
    precision: str = "auto"
    compile: bool = False
    compile_mode: str = "default"

    def __post_init__(self) -> None:
        _choice("sample", "solver", self.solver, ("euler", "heun"))
        _choice("sample", "precision", self.precision, ("auto", "fp32", "bf16"))
        _choice("sample", "compile_mode", self.compile_mode, COMPILE_MODES)
        _choice("sample", "negative_caption", self.negative_caption, ("null", "same", "bank"))
        if self.negative_caption == "bank" and not self.negative_bank:
            raise MiroError('sample.negative_bank is empty; set it to a text file of prompts (one a line) for sample.negative_caption = "bank"')
        _positive("sample", "steps", self.steps)
        _positive("sample", "time_shift", self.time_shift)
        check_range("sample.guidance_scale", self.guidance_scale)  # any finite g (1 = no guidance)
        for which in ("positive_targets", "negative_targets"):
            for name, value in getattr(self, which).items():
                _in_range("sample", f"{which}[{name}]", float(value), 0.0, 1.0)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run and its default sampler."""

    name: str = "run"
    seed: int = 0
    data: DataConfig = DataConfig()
    rewards: RewardConfig = RewardConfig()
    text: TextConfig = TextConfig()
    latents: LatentConfig = LatentConfig()
    model: ModelConfig = ModelConfig()
    objective: ObjectiveConfig = ObjectiveConfig()
    optim: OptimConfig = OptimConfig()
    sample: SampleConfig = SampleConfig()
    checkpoint_every: int = 250
    keep_checkpoints: int = 0  # 0 keeps every checkpoint (evaluation reads several); n keeps the last n
    log_every: int = 0  # steps between logged points; 0: about 200 points per run (miro.run_log)
    wandb: str = ""  # a wandb project to log to as well ("": TensorBoard and log.jsonl only); offline unless WANDB_MODE is set

    def __post_init__(self) -> None:
        if self.objective.self_conditioning > 0 and self.model.backbone != "rin":
            raise MiroError(f"objective.self_conditioning = {self.objective.self_conditioning} needs model.backbone = \"rin\" (latent self-conditioning); set it to 0 for \"{self.model.backbone}\"")
        _positive("run", "checkpoint_every", self.checkpoint_every)
        check_range("run.log_every", self.log_every, 0)  # 0: about 200 points per run
        if self.keep_checkpoints < 0:
            raise MiroError(f"run.keep_checkpoints = {self.keep_checkpoints} must be >= 0")
        unknown = set(self.sample.positive_targets) | set(self.sample.negative_targets)
        for name in sorted(unknown):
            if name not in self.rewards.conditioned:
                raise unknown_name_error("reward target", name, self.rewards.conditioned)


# the fields of a RunConfig that name a file or folder its run reads (the sweep keys units by their content)
PATH_FIELDS = ("data.path", "data.annotations", "data.bin_edges", "data.features", "text.path", "text.null_embedding",
               "latents.vae_path", "sample.negative_bank")


# ---------------------------------------------------------------------------------------------------
# Building configs from plain data and writing them back
# ---------------------------------------------------------------------------------------------------
C = TypeVar("C")


def to_dict(config: Any) -> dict[str, Any]:
    """Plain, JSON-ready data (tuples as lists, mappings as dicts)."""
    return typing.cast(dict[str, Any], _plain(dataclasses.asdict(config)))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def from_dict(cls: type[C], data: Mapping[str, Any], *, section: str = "") -> C:
    """Build `cls` from nested plain data; unknown keys raise with a "did you mean"."""
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{section}.{key}" if section else key
        if key not in names:
            raise MiroError(f'unknown config key "{where}"{did_you_mean(key, names)}; allowed: {", ".join(names)}')
        kwargs[key] = _convert(hints[key], value, where)
    return cls(**kwargs)


def _convert(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise MiroError(f"config section {where} must be a mapping, got {value!r}")
        return from_dict(typing.cast(type, hint), value, section=where)
    origin = get_origin(hint)
    if origin is tuple:
        return _sequence(hint, value, where)
    if origin in (Mapping, dict) or hint is Mapping:
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        return value
    if hint in (int, float) and isinstance(value, bool):
        raise MiroError(f"config key {where} = {value!r} must be a number")
    if hint is float and isinstance(value, int):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise MiroError(f"config key {where} = {value!r} must be of type {hint.__name__}")
    return value


def _sequence(hint: Any, value: Any, where: str) -> tuple[Any, ...]:
    """A tuple field from a list, or from "a,b" text as given on the command line."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    elif not isinstance(value, (list, tuple)):
        raise MiroError(f'config key {where} = {value!r} must be a list: write {where}=a,b or {where}=\'["a", "b"]\'')
    kinds = typing.get_args(hint)
    kind = kinds[0] if kinds else str
    if kind in (int, float):
        try:
            return tuple(kind(v) for v in value)
        except (TypeError, ValueError):
            raise MiroError(f"config key {where} = {value!r} must be a list of numbers: write {where}=0.9,0.999") from None
    return tuple(str(v) if kind is str else v for v in value)


def with_overrides(config: C, overrides: Iterable[str]) -> C:
    """Apply "section.key=value" strings (values parsed as JSON, else taken as text)."""
    import json

    data = to_dict(config)
    for item in overrides:
        if "=" not in item:
            raise MiroError(f'override "{item}" is not of the form section.key=value (e.g. optim.steps=200)')
        path, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = data
        keys = path.split(".")
        for depth, key in enumerate(keys[:-1]):
            if not isinstance(node.get(key), dict):
                where = ".".join(keys[: depth + 1])
                raise MiroError(f'override "{item}": "{where}" is not a config section{did_you_mean(key, [k for k, v in node.items() if isinstance(v, dict)])}')
            node = node[key]
        node[keys[-1]] = value
    return from_dict(type(config), data)
