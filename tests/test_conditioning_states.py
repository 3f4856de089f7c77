"""Every conditioning state the sampler feeds by default is one training produces with non-zero probability.

A state is what the network is shown: the text (after the `prompt` scheme writes rewards into it), the
reward values and the kept mask. Training rewards are binned levels in [0, 1], so the test feeds training
rewards at the sampler's positive level (1) and checks both default branches against many training draws.
"""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from miro.config import DROPOUT_STRATEGIES, SCHEMES, RewardConfig, SampleConfig
from miro.objective import condition_inputs
from miro.presets import PRESETS, preset
from miro.sample import branch_conditions, guidance_branches

UNREAD_PATHS = {"data.path": "unread", "text.path": "unread", "latents.vae_path": "unread"}

CAPTION = "a red circle"


def training_states(cfg: RewardConfig, draws: int = 4000) -> set[tuple[str, tuple[float, ...], tuple[bool, ...]]]:
    names = cfg.conditioned
    captions, values, kept = condition_inputs([CAPTION] * draws, torch.ones(draws, len(names)), cfg,
                                              torch.Generator().manual_seed(0))
    return {(c, tuple(v.tolist()), tuple(k.tolist())) for c, v, k in zip(captions, values, kept, strict=True)}


def sampler_states(cfg: RewardConfig, sample: SampleConfig) -> list[tuple[str, tuple[float, ...], tuple[bool, ...]]]:
    states = []
    for branch in guidance_branches(sample, cfg.conditioned):
        texts, values, kept = branch_conditions(branch, [CAPTION], cfg.conditioned, cfg.scheme)
        states.append((texts[0], tuple(values[0].tolist()), tuple(kept[0].tolist())))
    return states


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("strategy", DROPOUT_STRATEGIES)
@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_default_guidance_states_are_trained(scheme, strategy, dropout_p):
    names = () if scheme == "none" else ("alpha", "beta", "gamma")
    cfg = RewardConfig(names=names, scheme=scheme, dropout_strategy=strategy, dropout_p=dropout_p, caption_dropout=0.1)
    trained = training_states(cfg)
    for state in sampler_states(cfg, SampleConfig()):
        assert state in trained, f"sampler feeds {state}, which training never produces"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_trains_its_default_guidance_states(name):
    cfg = preset(name, UNREAD_PATHS)  # the paper preset's user paths; never opened here
    trained = training_states(cfg.rewards)
    for state in sampler_states(cfg.rewards, cfg.sample):
        assert state in trained, f"preset {name}: sampler feeds {state}, which training never produces"


def test_a_run_without_caption_dropout_never_sees_the_null_negative():
    cfg = replace(preset("shapes").rewards, caption_dropout=0.0)
    negative = sampler_states(cfg, SampleConfig())[1]
    assert negative not in training_states(cfg)
