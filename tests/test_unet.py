"""The conv U-Net backbone: shapes through every level, determinism, that it learns, and its config checks."""
from dataclasses import replace

import pytest
import torch

from core_fixtures import tiny_config
from miro.config import ModelConfig
from miro.errors import MiroError
from miro.nets.flow_model import build_model
from miro.nets.unet import UNet
from miro.presets import preset
from miro.text import ShapesTextEncoder


def tiny_unet_model(seed: int = 0):
    cfg = tiny_config("tokens", "unet")
    encoder = ShapesTextEncoder(cfg.text.dim, cfg.text.max_tokens)
    torch.manual_seed(seed)
    return build_model(cfg.model, cfg.rewards, cfg.objective, encoder.dim), encoder


def inputs(encoder, n: int = 4):
    g = torch.Generator().manual_seed(1)
    text, mask = encoder.encode(["a photo of a red circle", "a photo of two squares"] * (n // 2))
    return (torch.randn(n, 3, 16, 16, generator=g), torch.rand(n, generator=g), text, mask,
            torch.rand(n, 2, generator=g), torch.ones(n, 2, dtype=torch.bool))


def test_output_has_the_input_shape_and_attention_sits_at_the_small_maps():
    model, encoder = tiny_unet_model()
    v, latents = model(*inputs(encoder))
    assert v.shape == (4, 3, 16, 16) and latents is None
    unet = model.backbone
    assert isinstance(unet, UNet)
    attended = [type(a).__name__ for a in unet.down_attn]
    assert attended == ["Identity", "SpatialAttention", "SpatialAttention"]  # 16 px no, 8 and 4 px yes
    assert torch.count_nonzero(v) == 0, "the output convolution starts at zero (zero velocity)"


def test_same_seed_same_weights_and_output():
    a, encoder = tiny_unet_model(seed=3)
    b, _ = tiny_unet_model(seed=3)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    with torch.no_grad():
        for p in a.backbone.conv_out.parameters():
            p.normal_(0, 0.1)
        b.backbone.conv_out.load_state_dict(a.backbone.conv_out.state_dict())
    x = inputs(encoder)
    assert torch.equal(a(*x)[0], b(*x)[0])


def test_a_few_steps_overfit_one_batch():
    model, encoder = tiny_unet_model()
    x_t, t, text, mask, rewards, kept = inputs(encoder)
    target = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(2))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(50):
        loss = (model(x_t, t, text, mask, rewards, kept)[0] - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_the_shapes_default_is_the_unet_and_the_dit_stays_selectable():
    cfg = preset("shapes")
    assert cfg.model.backbone == "unet" and cfg.model.unet_channels == (16, 32, 64)
    model = build_model(cfg.model, cfg.rewards, cfg.objective, cfg.text.dim)
    assert 0.4e6 < sum(p.numel() for p in model.parameters()) < 0.7e6
    dit = build_model(replace(cfg.model, backbone="dit"), cfg.rewards, cfg.objective, cfg.text.dim)
    assert type(dit.backbone).__name__ == "DiT"


@pytest.mark.parametrize(("fields", "message"), [
    ({"image_size": 18, "patch_size": 2, "unet_channels": (8, 16, 32)}, "divisible by 2\\^\\(levels - 1\\)"),
    ({"unet_channels": (8, 6)}, "not divisible by model.heads"),
    ({"unet_channels": ()}, "non-empty"),
])
def test_bad_unet_settings_are_refused_with_the_fix(fields, message):
    with pytest.raises(MiroError, match=message):
        ModelConfig(**{"backbone": "unet", "heads": 4, "patch_size": 4, "image_size": 32, **fields})
