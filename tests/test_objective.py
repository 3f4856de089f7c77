"""The training loss and the guided sampler pinned on small analytic cases, each idea on its own (they were
otherwise held only by the parity tests against the released package, which skip when it cannot be fetched):
the interpolant's time convention, the velocity target, logit-normal time, latent self-conditioning, uncertainty
weighting, and guidance's formula and branch order. A stub network records what it is shown and answers a
known velocity, so every expected number is written by hand."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from miro.config import ObjectiveConfig, RewardConfig
from miro.objective import flow_matching_loss
from miro.sample import Branch, sample

REWARDS = RewardConfig(names=("a", "b"), scheme="tokens", dropout_strategy="none", caption_dropout=0.0)


class Text:
    """Every caption encodes to one zero token."""

    max_tokens, dim = 1, 4

    def encode(self, captions):
        return torch.zeros(len(captions), 1, 4), torch.ones(len(captions), 1, dtype=torch.bool)


class Recorder(nn.Module):
    """Answers v = `velocity` everywhere and latents = call number; records each call's (x_t, t, prev)."""

    has_latents = True

    def __init__(self, velocity: float = 1.0) -> None:
        super().__init__()
        self.velocity, self.calls = velocity, []
        self.weight = nn.Parameter(torch.zeros(()))  # something for the loss to depend on

    def forward(self, x_t, t, text, mask, rewards, kept, prev=None):
        self.calls.append({"x_t": x_t.clone(), "t": t.clone(), "prev": prev, "grad": torch.is_grad_enabled()})
        latents = torch.full((x_t.shape[0], 2, 3), float(len(self.calls)))
        return torch.full_like(x_t, self.velocity) + self.weight, latents


def loss_of(x: torch.Tensor, objective: ObjectiveConfig, model: Recorder | None = None, logvar=None, seed: int = 0) -> tuple[float, Recorder]:
    model = model or Recorder()
    rewards = torch.ones(x.shape[0], 2)
    loss = flow_matching_loss(model, logvar, x, [""] * x.shape[0], rewards, Text(), REWARDS, objective, torch.Generator().manual_seed(seed))
    return float(loss), model


PLAIN = ObjectiveConfig(time_sampling="uniform", self_conditioning=0.0, uncertainty_weighting=False)


def test_the_interpolant_puts_pure_noise_at_t_one():
    """x_t = (1 - t) x + t eps: from the same draws, data shifted by K moves x_t by (1 - t) K."""
    k, shape = 3.0, (64, 1, 2, 2)
    _, zero = loss_of(torch.zeros(shape), PLAIN)
    _, shifted = loss_of(torch.full(shape, k), PLAIN)
    t = zero.calls[0]["t"]
    assert torch.equal(t, shifted.calls[0]["t"])  # the same seeded time and noise
    moved = (shifted.calls[0]["x_t"] - zero.calls[0]["x_t"]).flatten(1)
    assert torch.allclose(moved, ((1 - t) * k).unsqueeze(1).expand_as(moved), atol=1e-5)


def test_the_target_is_the_velocity_eps_minus_x():
    """With v_theta = 1 everywhere, the loss is mean((1 - (eps - x))^2), eps read back from x_t."""
    x = torch.linspace(-2, 2, 64 * 4).reshape(64, 1, 2, 2)
    loss, model = loss_of(x, PLAIN)
    t = model.calls[0]["t"].reshape(-1, 1, 1, 1)
    eps = (model.calls[0]["x_t"] - (1 - t) * x) / t
    assert loss == pytest.approx(float((1 - (eps - x)).pow(2).mean()), rel=1e-5)
    assert loss != pytest.approx(float((1 - (x - eps)).pow(2).mean()), rel=1e-2)  # the other sign would not pass


def test_logit_normal_time_is_the_sigmoid_of_a_standard_normal():
    _, model = loss_of(torch.zeros(20_000, 1, 1, 1), replace_time("logit_normal"))
    t = model.calls[0]["t"]
    inside = ((t > torch.sigmoid(torch.tensor(-1.0))) & (t < torch.sigmoid(torch.tensor(1.0)))).float().mean()
    assert float(inside) == pytest.approx(0.6827, abs=0.015)  # P(|z| < 1); uniform time gives 0.462
    _, uniform = loss_of(torch.zeros(20_000, 1, 1, 1), PLAIN)
    u = uniform.calls[0]["t"]
    assert float(((u > 0.2689) & (u < 0.7311)).float().mean()) == pytest.approx(0.4621, abs=0.015)


def replace_time(kind: str) -> ObjectiveConfig:
    from dataclasses import replace

    return replace(PLAIN, time_sampling=kind)


@pytest.mark.parametrize("rate", [0.9, 0.25])
def test_self_conditioning_feeds_the_first_pass_latents_to_a_share_of_the_batch(rate):
    from dataclasses import replace

    _, model = loss_of(torch.zeros(8000, 1, 1, 1), replace(PLAIN, self_conditioning=rate))
    first, second = model.calls
    assert first["prev"] is None and not first["grad"] and second["grad"]  # the first pass is not trained through
    used = second["prev"].flatten(1).eq(1.0).all(1)  # the first call's latents (1) or zeros
    assert torch.equal(second["prev"].flatten(1)[~used], torch.zeros_like(second["prev"].flatten(1)[~used]))
    assert float(used.float().mean()) == pytest.approx(rate, abs=0.02)
    _, off = loss_of(torch.zeros(8, 1, 1, 1), PLAIN)
    assert len(off.calls) == 1 and off.calls[0]["prev"] is None


def test_uncertainty_weighting_divides_by_the_learned_variance_and_adds_its_log():
    class Constant(nn.Module):
        def forward(self, t):
            return torch.full_like(t, math.log(2.0))

    x = torch.linspace(-1, 1, 32 * 4).reshape(32, 1, 2, 2)
    plain, _ = loss_of(x, PLAIN)
    weighted, _ = loss_of(x, PLAIN, logvar=Constant())
    assert weighted == pytest.approx(plain / 2 + math.log(2.0), rel=1e-6)


class RewardVelocity(nn.Module):
    """v = the mean of the branch's reward values: 1 for targets all 1, 0 for targets all 0."""

    reward_names, scheme = ("a", "b"), "tokens"

    def forward(self, x, t, text, mask, values, kept, prev_latents=None):
        return values.mean(1).reshape(-1, 1, 1, 1).expand_as(x).clone(), None


@pytest.mark.parametrize("g", [1.0, 3.0, 5.5])
def test_guidance_is_v_neg_plus_g_times_v_pos_minus_v_neg_with_the_positive_branch_first(g):
    """One Euler step from t = 1 to 0: x0 = noise - v, and v = 0 + g (1 - 0) = g."""
    noise = torch.randn(3, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    x = sample(RewardVelocity(), Text(), ["p"] * 3, [0, 1, 2], (1, 2, 2), positive=Branch({"a": 1.0, "b": 1.0}),
               negative=Branch({"a": 0.0, "b": 0.0}, null_caption=True), guidance_scale=g, steps=1, noise=noise)
    assert torch.allclose(noise - x, torch.full_like(x, g))
