"""HPSv2 through hpsv2's own code: our batched scorer against `hpsv2.img_score.score` on tiny weights."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from miro.errors import MiroError
from miro.rewards.real import hps
from miro.rewards.real.hpsv2_compat import hpsv2_open_clip
from miro.tiny.clip import TINY_HPS, TINY_HPS_CONFIG, randomise, write_config

from .needs import cuda


@pytest.fixture(scope="module")
def hps_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny HPS checkpoint saved like HPS_v2_compressed.pt: torch.save({'state_dict': ...})."""
    folder = tmp_path_factory.mktemp("hps")
    open_clip = hpsv2_open_clip()
    open_clip.add_model_config(write_config(folder, TINY_HPS, TINY_HPS_CONFIG))
    model = open_clip.create_model(TINY_HPS, None, precision="amp", output_dict=True)
    randomise(model, seed=1)
    path = folder / "HPS_v2_compressed.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    return path


def test_matches_hpsv2_score(hps_checkpoint, batch, pil_images, prompts, monkeypatch):
    from hpsv2 import img_score

    ours = hps.build(checkpoint=hps_checkpoint, version="v2.0", model_name=TINY_HPS).score(batch, prompts)
    # hpsv2.score builds a ViT-H-14 from downloaded laion weights before loading `cp`; hand it the
    # tiny architecture instead, then let its own code load the checkpoint, preprocess and score.
    model, _, preprocess_val = hpsv2_open_clip().create_model_and_transforms(
        TINY_HPS, None, precision="amp", light_augmentation=True, output_dict=True
    )
    monkeypatch.setitem(img_score.model_dict, "model", model)
    monkeypatch.setitem(img_score.model_dict, "preprocess_val", preprocess_val)
    reference = [img_score.score(image, prompt, cp=str(hps_checkpoint))[0] for image, prompt in zip(pil_images, prompts)]
    assert ours.shape == (len(prompts),)
    torch.testing.assert_close(ours, torch.tensor(reference, dtype=torch.float32), rtol=0, atol=1e-6)
    assert ours.std() > 1e-3  # the prompts and images really change the score


def test_loaded_once_scores_any_batch(hps_checkpoint, batch, prompts):
    scorer = hps.build(checkpoint=hps_checkpoint, version="v2.0", model_name=TINY_HPS)
    full = scorer.score(batch, prompts)
    torch.testing.assert_close(scorer.score(batch[1:], prompts[1:]), full[1:], rtol=0, atol=1e-6)  # batch-size invariant
    half = hps.build(checkpoint=hps_checkpoint, version="v2.0", model_name=TINY_HPS, dtype="bfloat16")
    torch.testing.assert_close(half.score(batch, prompts), full, rtol=0, atol=0.05)  # bf16 autocast, fp32 weights
    assert half.info.fingerprint() != scorer.info.fingerprint()


@cuda
def test_cuda_with_fp16_autocast_agrees_with_cpu(hps_checkpoint, batch, prompts):
    cpu = hps.build(checkpoint=hps_checkpoint, version="v2.0", model_name=TINY_HPS).score(batch, prompts)
    gpu = hps.build(checkpoint=hps_checkpoint, version="v2.0", model_name=TINY_HPS, device="cuda", dtype="float16")
    torch.testing.assert_close(gpu.score(batch, prompts), cpu, rtol=0, atol=0.02)


def test_records_checkpoint_hash_and_transform(hps_checkpoint):
    scorer = hps.build(checkpoint=hps_checkpoint, version="v2.0", model_name=TINY_HPS, light_augmentation=False)
    details = scorer.info.details
    assert len(details["sha256:checkpoint"]) == 64
    assert "centre crop" in details["preprocessing"]
    assert "hpsv2==1.2.0" in details["packages"]
    assert scorer.info.version == "HPS v2.0"


def test_hpsv2_tokenizer_runs_on_open_clips_bpe_file(prompts):
    import open_clip

    ours = hpsv2_open_clip().get_tokenizer("ViT-H-14")(prompts)
    assert torch.equal(ours, open_clip.get_tokenizer("ViT-H-14")(prompts))


def test_unknown_version_suggests_the_right_one(hps_checkpoint):
    with pytest.raises(MiroError, match='did you mean "v2.1"'):
        hps.build(checkpoint=hps_checkpoint, version="v2.l", model_name=TINY_HPS)


def test_missing_checkpoint_names_file_and_download_command(tmp_path):
    hint = r"HPS_v2.1_compressed.pt does not exist; get it with: huggingface-cli download xswu/HPSv2"
    with pytest.raises(MiroError, match=hint):
        hps.build(checkpoint=tmp_path / "HPS_v2.1_compressed.pt")
