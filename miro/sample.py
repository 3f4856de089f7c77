"""Sampling: an ODE solver for any velocity field, and MIRO's multi-reward classifier-free guidance.

    x(1) = eps;   dx/dt = v(x, t);   integrate from t = 1 to t = 0   (Euler or Heun)
    v = v_neg + g (v_pos - v_neg)                                    (guidance, common form)
The positive and negative branches each carry a caption (or the null caption "") and a vector of
reward targets. A config's targets become branches in one place, `guidance_branches`: a reward it leaves
out is 1 in the positive branch and 0 in the negative (the released pipeline). Isolating reward j:
positive all 1, negative all 1 except j = 0. A `Branch` built by hand may leave a reward out: "dropped". The initial noise of every image comes from its own
seed (prompt id, sample index, seed), so an image does not depend on batch size or resume point.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from miro.compilation import compile_network, sampling_autocast
from miro.config import SampleConfig
from miro.conventions import guided_velocity
from miro.errors import MiroError, check_range, did_you_mean
from miro.nets.conditioning import caption_with_rewards
from miro.nets.flow_model import FlowModel
from miro.seeding import generator_for, seed_for
from miro.text import TextEncoder

VelocityField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x (B, ...), t (B,)) -> v


def time_grid(steps: int, shift: float = 1.0) -> torch.Tensor:
    """steps + 1 times from 1 to 0; shift > 1 spends more steps at high noise (SD3's t' = s t / (1 + (s - 1) t))."""
    t = torch.linspace(1.0, 0.0, steps + 1)
    return shift * t / (1 + (shift - 1) * t)


@torch.no_grad()
def integrate(velocity: VelocityField, x: torch.Tensor, steps: int, solver: str = "euler",
              shift: float = 1.0) -> torch.Tensor:
    """Solve dx/dt = v(x, t) from t = 1 (x = noise) to t = 0 with Euler or Heun (2nd order) steps.

    The time grid stays on the host (Python floats), so no step waits for the device to answer a question.
    """
    grid = time_grid(steps, shift)
    for t_now, t_next in zip(grid[:-1], grid[1:], strict=True):
        dt = float(t_next - t_now)  # negative
        v = velocity(x, x.new_full((x.shape[0],), float(t_now)))
        x_euler = x + dt * v
        if solver == "heun" and t_next > 0:
            v_next = velocity(x_euler, x.new_full((x.shape[0],), float(t_next)))
            x = x + dt * 0.5 * (v + v_next)
        else:
            x = x_euler
    return x


def initial_noise(shape: Sequence[int], seeds: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """One noise tensor per sample, each from its own seed: (len(seeds), *shape)."""
    return torch.stack([torch.randn(*shape, generator=generator_for("noise", s)) for s in seeds]).to(device)


@dataclass(frozen=True)
class Branch:
    """One side of guidance: caption source and reward targets (missing reward = dropped)."""

    targets: Mapping[str, float]
    null_caption: bool = False
    # captions drawn per sample (from its seed) in place of the prompt: the authors' GenEval protocol guides
    # against a bank of random-prompt embeddings rather than the null caption
    caption_bank: tuple[str, ...] = ()

    def captions_for(self, captions: Sequence[str], seeds: Sequence[int]) -> list[str]:
        if not self.caption_bank:
            return list(captions)
        return [self.caption_bank[seed_for("negative", s) % len(self.caption_bank)] for s in seeds]


POSITIVE_DEFAULT, NEGATIVE_DEFAULT = 1.0, 0.0  # released MiroPipeline._build_coherence defaults


def guidance_branches(cfg: SampleConfig, trained: Sequence[str]) -> tuple[Branch, Branch]:
    """The guidance branches of a sample config: every trained reward gets a value, the config's target or
    the released default (1 positive, 0 negative); the negative carries the null caption unless `same`.
    Every command (miro sample, harness.evaluation, tuning, the sweep's plan) builds its branches here."""
    check_targets(cfg.positive_targets, trained)
    check_targets(cfg.negative_targets, trained)
    positive = {r: float(cfg.positive_targets.get(r, POSITIVE_DEFAULT)) for r in trained}
    negative = {r: float(cfg.negative_targets.get(r, NEGATIVE_DEFAULT)) for r in trained}
    bank = read_caption_bank(cfg.negative_bank) if cfg.negative_caption == "bank" else ()
    return Branch(positive), Branch(negative, null_caption=cfg.negative_caption == "null", caption_bank=bank)


def read_caption_bank(path: str) -> tuple[str, ...]:
    """A text file of prompts, one a line (blank lines skipped)."""
    file = Path(path)
    if not file.is_file():
        raise MiroError(f"sample.negative_bank = {path!r} is not a file; give a text file with one prompt a line")
    bank = tuple(line.strip() for line in file.read_text().splitlines() if line.strip())
    if not bank:
        raise MiroError(f"sample.negative_bank {path} holds no prompt; write one prompt a line")
    return bank


def check_targets(targets: Mapping[str, float], trained: Sequence[str]) -> None:
    """Refuse targets for rewards the checkpoint never saw, or values outside [0, 1]."""
    for name, value in targets.items():
        if name not in trained:
            known = ", ".join(trained) if trained else "none (a no-reward baseline)"
            raise MiroError(f'reward target "{name}" was not a training reward of this checkpoint{did_you_mean(name, trained)}; its rewards: {known}')
        if not 0.0 <= float(value) <= 1.0:
            raise MiroError(f'reward target "{name}" = {value} is outside [0, 1]; targets are binned reward levels (1 = best bin)')


def branch_conditions(branch: Branch, captions: Sequence[str], names: Sequence[str],
                      scheme: str) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """What one branch shows the network: the texts to encode, reward values (B, N) and kept mask (B, N)."""
    b = len(captions)
    values = torch.tensor([float(branch.targets.get(n, 0.0)) for n in names]).reshape(1, -1).expand(b, -1)
    kept = torch.tensor([n in branch.targets for n in names], dtype=torch.bool).reshape(1, -1).expand(b, -1)
    texts = ["" if branch.null_caption else c for c in captions]
    if scheme == "prompt":
        texts = [caption_with_rewards(c, names, v.tolist(), k.tolist()) if c else c for c, v, k in zip(texts, values, kept, strict=True)]
    return texts, values, kept


def branch_inputs(branch: Branch, captions: Sequence[str], model: FlowModel, text_encoder: TextEncoder,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Text features, text mask, reward values and kept mask of one branch for a batch of captions."""
    texts, values, kept = branch_conditions(branch, captions, model.reward_names, model.scheme)
    text, mask = text_encoder.encode(texts)
    return text.to(device), mask.to(device), values.to(device), kept.to(device)


@torch.no_grad()
def sample(model: FlowModel, text_encoder: TextEncoder, captions: Sequence[str], seeds: Sequence[int],
           shape: Sequence[int], *, positive: Branch, negative: Branch | None, guidance_scale: float,
           steps: int = 50, solver: str = "euler", shift: float = 1.0,
           device: torch.device | str = "cpu", precision: str = "auto",
           compile_mode: str | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Generate one sample per (caption, seed) in the model's data space: (B, *shape).

    The ODE starts from `noise` when given ((B, *shape), e.g. the very noise another implementation starts from),
    else from each seed's own noise (`initial_noise`). With `negative` None or guidance_scale == 1 only the
    positive branch is evaluated. Network calls run
    under `precision` (SampleConfig.precision) and, with a `compile_mode`, through torch.compile; the ODE
    state stays float32. A non-finite guidance scale, or an output holding NaN or inf (a diverged network),
    is refused: it would decode to black images that a scorer rates as valid.
    """
    device = torch.device(device)
    check_range("guidance scale", guidance_scale)
    if noise is not None and tuple(noise.shape) != (len(seeds), *shape):
        raise MiroError(f"the initial noise has shape {tuple(noise.shape)}; sampling {len(seeds)} images of {tuple(shape)} needs "
                        f"{(len(seeds), *shape)}")
    check_targets(positive.targets, model.reward_names)
    guided = negative is not None and guidance_scale != 1.0
    if negative is not None:
        check_targets(negative.targets, model.reward_names)
    model.eval()
    pos = branch_inputs(positive, captions, model, text_encoder, device)
    both = pos
    if guided:
        assert negative is not None
        neg = branch_inputs(negative, negative.captions_for(captions, seeds), model, text_encoder, device)
        both = tuple(torch.cat([p, n]) for p, n in zip(pos, neg, strict=True))  # type: ignore[assignment]
    latents: list[torch.Tensor | None] = [None]  # self-conditioning: the previous evaluation's latents
    net = compile_network(model, compile_mode) if compile_mode else model

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x_in, t_in = (torch.cat([x, x]), torch.cat([t, t])) if guided else (x, t)
        with sampling_autocast(precision, device):
            v, z = net(x_in, t_in, *both, prev_latents=latents[0])
        v, latents[0] = v.to(torch.float32, copy=True), z  # a copy: CUDA graphs reuse output memory on the next call
        if not guided:
            return v
        v_pos, v_neg = v.chunk(2)
        return guided_velocity(v_pos, v_neg, guidance_scale)

    start = initial_noise(shape, seeds, device) if noise is None else noise.to(device, torch.float32)
    x = integrate(velocity, start, steps, solver, shift)
    if not torch.isfinite(x).all():
        raise MiroError(f"the sampler produced NaN or inf in {int((~torch.isfinite(x)).flatten(1).any(1).sum())} of {len(x)} samples "
                        "(a diverged checkpoint or an extreme guidance scale); use an earlier checkpoint or a smaller guidance")
    return x
