"""The aesthetic predictor: our open_clip scorer against ImageReward's copy of the reference (OpenAI `clip`)."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from miro.errors import MiroError
from miro.rewards.real import aesthetic
from miro.rewards.real.image_reward_compat import image_reward_modules
from miro.tiny.clip import TINY_AESTHETIC, TINY_AESTHETIC_CONFIG, randomise, write_config


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny CLIP tower saved as safetensors and as a plain .pt, and a random head saved like the real .pth."""
    import open_clip
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("aesthetic")
    open_clip.add_model_config(write_config(folder, TINY_AESTHETIC, TINY_AESTHETIC_CONFIG))
    clip = open_clip.create_model(TINY_AESTHETIC)
    randomise(clip, seed=6)
    # OpenAI released ViT-L/14 in float16 and `clip.load` rounds every state dict to it; tiny weights
    # that float16 represents exactly keep that rounding out of the comparison, as with the real file.
    state = {k: v.half().float().contiguous() if v.is_floating_point() else v for k, v in clip.state_dict().items()}
    save_file(state, str(folder / "clip.safetensors"))
    torch.save(state, folder / "clip.pt")
    head = aesthetic.AestheticHead()
    randomise(head, seed=7)
    torch.save(head.state_dict(), folder / "sac+logos+ava1-l14-linearMSE.pth")  # a plain state dict, as published
    head_path = folder / "sac+logos+ava1-l14-linearMSE.pth"
    return {"clip": folder / "clip.safetensors", "clip_pt": folder / "clip.pt", "head": head_path}


def test_matches_reference_predictor(weights, batch, pil_images, prompts, tmp_path, monkeypatch):
    import clip

    ours = aesthetic.build(head=weights["head"], clip_weights=weights["clip"], clip_model=TINY_AESTHETIC).score(batch, prompts)
    # ImageReward's AestheticScore is the reference inference (clip.load("ViT-L/14") + MLP on F.normalize);
    # hand clip.load the tiny state dict instead of the download, keeping the rest of clip.load.
    real_load = clip.load
    monkeypatch.setattr(clip, "load", lambda _name, **kwargs: real_load(str(weights["clip_pt"]), **kwargs))
    image_reward_modules()
    reference_model = importlib.import_module("ImageReward.models.AestheticScore").AestheticScore(str(tmp_path), "cpu")
    reference_model.mlp.load_state_dict(torch.load(weights["head"], weights_only=True))
    reference_model.eval()
    reference = []
    for i, image in enumerate(pil_images):
        image.save(tmp_path / f"{i}.png")  # the reference reads files; PNG keeps the 8-bit pixels
        with torch.no_grad():
            reference.append(reference_model.score("", str(tmp_path / f"{i}.png")))
    torch.testing.assert_close(ours, torch.tensor(reference), rtol=0, atol=1e-5)
    assert ours.std() > 1e-3


def test_pt_and_safetensors_give_the_same_scores(weights, batch, prompts):
    from_safetensors = aesthetic.build(head=weights["head"], clip_weights=weights["clip"], clip_model=TINY_AESTHETIC)
    from_pt = aesthetic.build(head=weights["head"], clip_weights=weights["clip_pt"], clip_model=TINY_AESTHETIC)
    torch.testing.assert_close(from_safetensors.score(batch, prompts), from_pt.score(batch, prompts), rtol=0, atol=0)


def test_head_with_wrong_shapes_is_refused(weights, tmp_path):
    wrong = tmp_path / "head.pth"
    torch.save(aesthetic.AestheticHead(512).state_dict(), wrong)
    with pytest.raises(MiroError, match=r"shape mismatches layers\.0\.weight \(1024, 512\) vs model \(1024, 768\)"):
        aesthetic.build(head=wrong, clip_weights=weights["clip"], clip_model=TINY_AESTHETIC)


def test_missing_head_says_where_it_is_published(weights, tmp_path):
    with pytest.raises(MiroError, match=r"head=.*does not exist; get it with: wget .*improved-aesthetic-predictor"):
        aesthetic.build(head=tmp_path / "missing.pth", clip_weights=weights["clip"], clip_model=TINY_AESTHETIC)
