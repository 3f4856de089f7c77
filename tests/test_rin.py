import torch

from miro.nets.flow_model import build_model
from miro.presets import paper


def test_rin_at_released_settings_has_360_4m_parameters():
    cfg = paper(data="unread", text="unread", vae="unread")  # the network only: no file is opened
    with torch.device("meta"):
        model = build_model(cfg.model, cfg.rewards, cfg.objective, text_dim=2048)  # FLAN-T5-XL width
    count = sum(p.numel() for p in model.parameters())
    assert round(count / 1e6, 1) == 360.4, count
