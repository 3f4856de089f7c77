"""Each conditioning scheme must let the reward targets change the output; `none` must not."""
import pytest
import torch

from core_fixtures import REWARDS, randomize, tiny_config
from miro.nets.conditioning import caption_with_rewards, reward_keep_mask
from miro.nets.flow_model import build_model
from miro.sample import Branch, branch_inputs
from miro.text import ShapesTextEncoder


def velocity_for(model, encoder, targets):
    text, mask, values, kept = branch_inputs(Branch(targets), ["a red circle"] * 2, model, encoder, torch.device("cpu"))
    x, t = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([0.5, 0.9])
    with torch.no_grad():
        return model(x, t, text, mask, values, kept)[0]


@pytest.mark.parametrize("backbone", ["unet", "dit", "rin"])
@pytest.mark.parametrize("scheme", ["tokens", "adaln", "prompt"])
def test_reward_targets_change_the_output(scheme, backbone):
    cfg = tiny_config(scheme, backbone)
    encoder = ShapesTextEncoder(cfg.text.dim, cfg.text.max_tokens)
    model = build_model(cfg.model, cfg.rewards, cfg.objective, encoder.dim).eval()
    randomize(model)
    high = velocity_for(model, encoder, dict.fromkeys(REWARDS, 1.0))
    low = velocity_for(model, encoder, {"alpha": 0.0, "beta": 1.0})
    dropped = velocity_for(model, encoder, {"beta": 1.0})
    assert (high - low).abs().max() > 1e-3
    assert (low - dropped).abs().max() > 1e-3, "a dropped reward must differ from the value 0"


@pytest.mark.parametrize("backbone", ["unet", "dit", "rin"])
def test_scheme_none_ignores_rewards(backbone):
    cfg = tiny_config("none", backbone)
    encoder = ShapesTextEncoder(cfg.text.dim, cfg.text.max_tokens)
    model = build_model(cfg.model, cfg.rewards, cfg.objective, encoder.dim).eval()
    randomize(model)
    assert model.reward_names == ()
    # the baseline takes no targets at all; passing the same batch twice must agree exactly
    assert torch.equal(velocity_for(model, encoder, {}), velocity_for(model, encoder, {}))
    x, t = torch.randn(1, 3, 16, 16), torch.tensor([0.5])
    text, mask = encoder.encode(["a red circle"])
    v1 = model(x, t, text, mask, torch.zeros(1, 0), torch.zeros(1, 0, dtype=torch.bool))[0]
    assert torch.isfinite(v1).all()


def test_prompt_scheme_writes_levels_and_leaves_out_dropped_rewards():
    assert caption_with_rewards("a cat", ["aes", "pick"], [1.0, 0.0], [True, False]) == "a cat | aes 9/9"
    assert caption_with_rewards("a cat", ["aes"], [0.5], [False]) == "a cat"


def test_binomial_dropout_keeps_at_least_one_reward_and_drops_about_p():
    keep = reward_keep_mask("binomial", 0.5, 4000, 3, torch.Generator().manual_seed(0))
    assert keep.any(dim=1).all()
    expected = 0.5 - 0.5**3 / 3  # rows that dropped all three get one reward back
    assert abs((1 - keep.float().mean()) - expected) < 0.02


def test_uniform_dropout_drops_a_uniform_number_of_rewards():
    keep = reward_keep_mask("uniform", 0.0, 6000, 3, torch.Generator().manual_seed(0))
    dropped = (~keep).sum(dim=1)
    counts = torch.bincount(dropped, minlength=3).float() / 6000
    assert torch.allclose(counts, torch.full((3,), 1 / 3), atol=0.03)


def test_no_dropout_keeps_everything():
    assert reward_keep_mask("none", 0.9, 5, 3, torch.Generator()).all()
