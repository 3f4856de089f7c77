"""The released training recipe, field by field: optimizer groups and LAMB, schedule, EMA, latent scaling,
initialisation, caption dropout and the guidance defaults (the numeric parity run is tests/test_parity_released.py)."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from core_fixtures import REWARDS, tiny_config
from miro.config import OptimConfig, RewardConfig, SampleConfig
from miro.errors import MiroError
from miro.latents import SDXL_CHANNEL_MEAN, SDXL_CHANNEL_STD, channel_scaling
from miro.nets.flow_model import build_model
from miro.objective import condition_inputs
from miro.optim import Lamb, ema_decay, lr_factor, parameter_groups, update_ema
from miro.presets import paper
from miro.sample import guidance_branches


def test_norms_and_biases_are_a_group_without_decay_or_trust_ratio():
    cfg = tiny_config("tokens", backbone="rin")
    model = build_model(cfg.model, cfg.rewards, cfg.objective, 64)
    decay, rest = parameter_groups(model, replace(cfg.optim, weight_decay=0.01))
    names = {id(p): n for n, p in model.named_parameters()}
    rest_names = [names[id(p)] for p in rest["params"]]
    assert rest["weight_decay"] == 0.0 and not rest["layer_adaptation"] and decay["layer_adaptation"]
    assert all(n.endswith("bias") or "norm" in n for n in rest_names)
    assert "backbone.prev_norm_out.weight" in rest_names and "condition.map_text.bias" in rest_names
    assert len(decay["params"]) + len(rest["params"]) == len(list(model.parameters()))


def test_lamb_adds_l2_before_the_trust_ratio_and_has_no_clip():
    w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    w.grad = torch.tensor([100.0, 0.0])  # a huge gradient is not clipped: the trust ratio sets the step length
    Lamb([{"params": [w], "weight_decay": 0.1, "layer_adaptation": True}], lr=0.01).step()
    update = torch.tensor([1.0, 0.0]) / (1 + 1e-8 / 100) + 0.1 * torch.tensor([3.0, 4.0])
    expected = torch.tensor([3.0, 4.0]) - 0.01 * (5.0 / update.norm()) * update
    assert torch.allclose(w.detach(), expected, atol=1e-6)


def test_paper_schedule_ends_at_the_released_fraction_and_ema_is_constant():
    optim = paper(data="unread", text="unread", vae="unread").optim
    assert lr_factor(optim.steps, optim) == pytest.approx(0.5 * (1 + math.cos(0.8 * math.pi)))  # 0.0955
    assert lr_factor(optim.warmup_steps - 1, optim) == 1.0
    assert ema_decay(0, optim) == 0.9999 and ema_decay(0, OptimConfig()) == pytest.approx(0.1)
    ema, model = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    before = ema.weight.detach().clone()
    update_ema(ema, model, 0.9)
    assert torch.allclose(ema.weight, 0.9 * before + 0.1 * model.weight)


def test_sdxl_channel_wise_scaling_gives_std_half_per_channel():
    scale, shift = channel_scaling("sdxl_channel_wise", 4, 0.13025, 0.0)
    z = torch.tensor(SDXL_CHANNEL_MEAN).reshape(1, 4, 1, 1) + torch.tensor(SDXL_CHANNEL_STD).reshape(1, 4, 1, 1) * torch.randn(4000, 4, 1, 1, generator=torch.Generator().manual_seed(0))
    x = (z - shift) * scale
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.full((4,), 0.5), atol=0.02)
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(4), atol=0.03)


def test_every_linear_of_the_condition_path_starts_with_zero_bias():
    cfg = tiny_config("tokens")
    model = build_model(cfg.model, cfg.rewards, cfg.objective, 64)
    for name, module in [*model.time_embed.named_modules(), *model.condition.named_modules()]:
        if isinstance(module, torch.nn.Linear) and module.bias is not None:
            assert module.bias.abs().max() == 0, name


def test_a_dropped_caption_trains_rewards_at_zero_not_dropped():
    cfg = RewardConfig(names=REWARDS, scheme="tokens", dropout_strategy="none", caption_dropout=0.5)
    captions, values, kept = condition_inputs(["a red circle"] * 64, torch.ones(64, 2), cfg, torch.Generator().manual_seed(0))
    null = torch.tensor([c == "" for c in captions])
    assert 0 < null.sum() < 64 and kept.all()
    assert (values[null] == 0).all() and (values[~null] == 1).all()


def test_a_reward_missing_from_targets_is_one_positive_and_zero_negative():
    positive, negative = guidance_branches(SampleConfig(positive_targets={"alpha": 0.625}), REWARDS)
    assert positive.targets == {"alpha": 0.625, "beta": 1.0} and negative.targets == {"alpha": 0.0, "beta": 0.0}
    positive, negative = guidance_branches(SampleConfig(negative_targets={"beta": 1.0}), REWARDS)
    assert positive.targets == {"alpha": 1.0, "beta": 1.0} and negative.targets == {"alpha": 0.0, "beta": 1.0}


def test_negative_bank_draws_each_sample_a_caption_from_its_seed(tmp_path):
    with pytest.raises(MiroError, match="sample.negative_bank is empty"):
        SampleConfig(negative_caption="bank")
    bank = tmp_path / "bank.txt"
    bank.write_text("a photo of a dog\n\na bowl of soup\na red bus\n")
    _, negative = guidance_branches(SampleConfig(negative_caption="bank", negative_bank=str(bank)), REWARDS)
    assert negative.caption_bank == ("a photo of a dog", "a bowl of soup", "a red bus") and not negative.null_caption
    drawn = negative.captions_for(["x"] * 40, list(range(40)))
    assert set(drawn) == set(negative.caption_bank)
    assert negative.captions_for(["y"], [7]) == [drawn[7]]  # a sample's negative depends on its seed only
