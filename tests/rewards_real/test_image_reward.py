"""ImageReward through the package's own code: our batched scorer against `RM.load(...).score`."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch

from miro.errors import MiroError
from miro.rewards.real import image_reward, image_reward_compat
from miro.rewards.real.image_reward_compat import bert_vocab_dir, image_reward_modules, local_bert_tokenizer
from miro.tiny.clip import randomise

from .needs import cuda
from .tiny_blip import med_config, tiny_create_vit, write_bert_vocab


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("image_reward")
    vocab = write_bert_vocab(folder / "bert-base-uncased")  # the name RM.load asks for, found in the cwd
    config = folder / "med_config.json"
    config.write_text(json.dumps(med_config()))
    return {"folder": folder, "vocab": vocab, "med_config": config}


@pytest.fixture()
def tiny_vit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every ImageReward built in the test (ours and the package's) use the one-block ViT."""
    _, blip = image_reward_modules()
    blip_pretrain = importlib.import_module("ImageReward.models.BLIP.blip_pretrain")
    monkeypatch.setattr(blip_pretrain, "create_vit", tiny_create_vit(blip))


@pytest.fixture()
def checkpoint(tiny_files: dict[str, Path], tiny_vit: None) -> Path:
    """A plain state dict saved with torch.save, like ImageReward.pt."""
    module, blip = image_reward_modules()
    with local_bert_tokenizer(blip, tiny_files["vocab"]):
        model = module.ImageReward(med_config=str(tiny_files["med_config"]), device="cpu")
    randomise(model, seed=2)
    path = tiny_files["folder"] / "ImageReward.pt"
    torch.save(model.state_dict(), path)
    return path


def test_matches_image_reward_score(tiny_files, checkpoint, batch, pil_images, prompts, monkeypatch):
    ours = image_reward.build(
        checkpoint=checkpoint, med_config=tiny_files["med_config"], tokenizer_dir=tiny_files["vocab"]
    ).score(batch, prompts)
    # The package's own path: RM.load finds ./bert-base-uncased in the working directory, no Hub call.
    monkeypatch.chdir(tiny_files["folder"])
    load = importlib.import_module("ImageReward.utils").load
    reference_model = load(str(checkpoint), device="cpu", med_config=str(tiny_files["med_config"]))
    reference = [reference_model.score(prompt, image) for image, prompt in zip(pil_images, prompts)]
    torch.testing.assert_close(ours, torch.tensor(reference, dtype=torch.float32), rtol=0, atol=1e-5)
    assert ours.std() > 1e-3


@cuda
def test_cuda_agrees_with_cpu(tiny_files, checkpoint, batch, prompts):
    files = {"checkpoint": checkpoint, "med_config": tiny_files["med_config"], "tokenizer_dir": tiny_files["vocab"]}
    cpu = image_reward.build(**files).score(batch, prompts)
    torch.testing.assert_close(image_reward.build(**files, device="cuda").score(batch, prompts), cpu, rtol=0, atol=1e-3)


def test_refuses_a_checkpoint_that_rm_load_would_accept(tiny_files, checkpoint, tmp_path):
    state = torch.load(checkpoint, weights_only=True)
    state.pop("mlp.layers.0.weight")
    state["blip.extra.weight"] = torch.zeros(1)
    wrong = tmp_path / "ImageReward.pt"
    torch.save(state, wrong)
    with pytest.raises(MiroError, match=r"missing keys mlp\.layers\.0\.weight; unexpected keys blip\.extra\.weight"):
        image_reward.build(checkpoint=wrong, med_config=tiny_files["med_config"], tokenizer_dir=tiny_files["vocab"])


def test_details_pin_all_three_files(tiny_files, checkpoint):
    details = image_reward.build(
        checkpoint=checkpoint, med_config=tiny_files["med_config"], tokenizer_dir=tiny_files["vocab"]
    ).info.details
    assert {"sha256:checkpoint", "sha256:med_config", "sha256:bert_vocab"} <= details.keys()
    assert "image-reward==1.5" in details["packages"]


def test_vocab_found_in_the_bundling_wheel(tmp_path, monkeypatch):
    package = tmp_path / "fake_vocab_wheel"
    package.mkdir()
    (package / "__init__.py").write_text("")
    write_bert_vocab(package / "model")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(image_reward_compat, "BUNDLED_VOCAB_PACKAGE", "fake_vocab_wheel")
    assert bert_vocab_dir(None, allow_download=False) == package / "model"


def test_missing_vocab_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(image_reward_compat, "BUNDLED_VOCAB_PACKAGE", "no_such_vocab_wheel")
    with pytest.raises(MiroError, match="pass tokenizer_dir=DIR .*huggingface-cli download bert-base-uncased"):
        bert_vocab_dir(None, allow_download=False)


def test_missing_checkpoint_names_file(tmp_path, tiny_files):
    hint = r"ImageReward.pt does not exist; get it with: huggingface-cli download THUDM/ImageReward ImageReward.pt"
    with pytest.raises(MiroError, match=hint):
        image_reward.build(checkpoint=tmp_path / "ImageReward.pt", med_config=tiny_files["med_config"])
