"""Precompute: tiny random AutoencoderKL and T5 saved with save_pretrained, loaded back through the real code.

The tokenizer is a `tokenizers` WordLevel model wrapped in PreTrainedTokenizerFast (no sentencepiece
model is available offline); AutoTokenizer loads it from the same folder as the T5 weights.
"""
from __future__ import annotations

import io

import pytest
import torch
from PIL import Image
from tiny_real_weights import save_tiny_t5, save_tiny_vae

from miro.data.annotate import annotate
from miro.data.precompute import (
    Features,
    PrecomputeOptions,
    encode_captions,
    encode_images,
    load_text_encoder,
    load_vae,
    precompute,
)
from miro.data.sources import ImageFolderSource, fit_to
from miro.data.training_set import RewardTrainingSet, fit_bins
from miro.errors import MiroError
from miro.rewards.base import Scorer, ScorerInfo


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    save_tiny_vae(root / "vae")
    save_tiny_t5(root / "t5")
    return str(root / "vae"), str(root / "t5")


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    colors = ["red", "green", "blue", "red", "green", "blue", "red"]
    for i, color in enumerate(colors):
        buffer = io.BytesIO()
        Image.new("RGB", (20 + i, 16), {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}[color]).save(buffer, "PNG")
        (root / f"{i:03d}.png").write_bytes(buffer.getvalue() if i != 4 else b"corrupt")
        (root / f"{i:03d}.txt").write_text(f"a photo of a {color} {'circle' if i % 2 else 'square'}")
    return root


def options(models, **overrides):
    vae, t5 = models
    return PrecomputeOptions(**{"vae_path": vae, "text_path": t5, "resolution": 16, "max_tokens": 8, "batch_size": 3, **overrides})


def test_features_match_the_encoders(models, folder, tmp_path):
    report = precompute(folder, tmp_path / "features", options(models), flush_every=3, progress=False)
    assert report.samples == 7 and report.failed == {"latent": 1, "text": 0}
    assert len(list((tmp_path / "features").glob("part-*.parquet"))) == 3  # flushed every 3 samples
    features = Features(tmp_path / "features")
    assert features.kinds == ["latent", "text"]
    assert not features.has(4, "latent") and "unreadable image" in features.failed[(4, "latent")]
    vae = load_vae(models[0])
    encoder = load_text_encoder(models[1], max_tokens=8)
    source = ImageFolderSource(folder)
    item = source.item(source.sample_ids.index(2))
    mean, std = encode_images(vae, fit_to(item.image(), 16)[None])
    hidden, mask = encode_captions(encoder, [item.caption])
    got = features.get(2)
    assert got["latent"].shape == (4, 8, 8)
    torch.testing.assert_close(got["latent"], mean[0], atol=2e-3, rtol=2e-3)  # stored unscaled, as float16
    torch.testing.assert_close(got["latent_std"], std[0], atol=2e-3, rtol=2e-3)
    assert got["text_embedding"].dtype == torch.float16 and got["text_mask"].dtype == torch.bool
    torch.testing.assert_close(got["text_embedding"].float(), hidden[0], atol=2e-3, rtol=2e-3)
    assert got["text_mask"].tolist() == mask[0].tolist() == [True] * 6 + [False] * 2
    assert set(features.get(4)) == {"text_embedding", "text_mask"}


class StopAt:
    """A source that is interrupted (like Ctrl-C) when item `at` is read."""

    def __init__(self, source, at):
        self.source, self.at = source, at
        self.sample_ids, self.problems = source.sample_ids, []

    def __len__(self):
        return len(self.source)

    def item(self, index):
        if index == self.at:
            raise KeyboardInterrupt
        return self.source.item(index)


def test_interrupted_precompute_resumes(models, folder, tmp_path):
    out = tmp_path / "features"
    with pytest.raises(KeyboardInterrupt):
        precompute(StopAt(ImageFolderSource(folder), 5), out, options(models), flush_every=100, progress=False)
    assert {sid for sid in range(7) if Features(out).has(sid, "text")} == {0, 1, 2}  # the finished batch was kept
    report = precompute(folder, out, options(models), progress=False)
    assert report.samples == 4 and report.skipped == 3
    features = Features(out)
    assert all(features.has(sid, "text") for sid in range(7))
    assert precompute(folder, out, options(models), progress=False).samples == 0


def test_shards_write_side_by_side_and_other_encoders_are_refused(models, folder, tmp_path):
    out = tmp_path / "features"
    for shard in range(2):
        precompute(folder, out, options(models, vae_path=""), shard_index=shard, shard_count=2, progress=False)
    assert all(Features(out).has(sid, "text") for sid in range(7))
    with pytest.raises(MiroError, match="text features from another encoder or settings"):
        precompute(folder, out, options(models, vae_path="", max_tokens=12), progress=False)
    other = tmp_path / "other_vae"
    save_tiny_vae(other, seed=1)
    precompute(folder, tmp_path / "f2", options(models, text_path=""), progress=False)
    with pytest.raises(MiroError, match="latent features from another encoder"):
        precompute(folder, tmp_path / "f2", options(models, text_path="", vae_path=str(other)), progress=False)


def test_option_and_path_refusals(models, tmp_path):
    with pytest.raises(MiroError, match="nothing to do"):
        PrecomputeOptions()
    with pytest.raises(MiroError, match="store_dtype"):
        PrecomputeOptions(vae_path="x", store_dtype="bfloat16")
    with pytest.raises(MiroError, match="has no config.json"):
        load_vae(str(tmp_path))
    with pytest.raises(MiroError, match="no part files"):
        Features(tmp_path / "nothing")


class Width(Scorer):
    info = ScorerInfo("width", "1")

    def score(self, images, prompts):
        return torch.full((len(images),), images.shape[-1] / 100)


def test_training_set_serves_latents_and_text(models, folder, tmp_path):
    precompute(folder, tmp_path / "features", options(models), progress=False)
    annotate(folder, [Width()], tmp_path / "ann.parquet", progress=False)
    bins = fit_bins(tmp_path / "ann.parquet", ["width"])
    data = RewardTrainingSet(folder, tmp_path / "ann.parquet", bins, ["width"], features=tmp_path / "features")
    assert len(data) == 6 and data.excluded == {"unreadable (every scorer failed)": 1}
    item = data[0]
    assert item["image"].shape == (4, 8, 8) and item["text_embedding"].shape == (8, 16)
    torch.testing.assert_close(item["image"], Features(tmp_path / "features").get(item["sample_id"])["latent"])
    with pytest.raises(MiroError, match="cannot be stored as uint8"):
        data.to_tensors(torch.uint8, progress=False)
    tensors = data.to_tensors(torch.float16, progress=False)
    assert tensors.images.shape == (6, 4, 8, 8) and tensors.images.dtype == torch.float16
    widths = tensors.rewards[:, 0]  # images are 20 + i pixels wide: rewards rise with the id, from 0 to 1
    assert tensors.sample_ids.tolist() == [0, 1, 2, 3, 5, 6]
    assert widths[0] == 0.0 and widths[-1] == 1.0 and bool((widths[1:] > widths[:-1]).all())


@pytest.mark.parametrize("normalisation", ["vae_config", "sdxl_channel_wise"])
def test_precomputed_latents_get_the_runs_normalisation(models, folder, tmp_path, normalisation):
    """The trainer turns stored posteriors into the same flow data the live VAE gives, for either scaling
    and with posterior sampling drawn from the step's generator (same generator, same draw)."""
    from dataclasses import replace

    from miro.config import LatentConfig
    from miro.latents import VaeSpace
    from miro.presets import preset
    from miro.train import data_encoders, posterior_std

    precompute(folder, tmp_path / "features", options(models), progress=False)
    annotate(folder, [Width()], tmp_path / "ann.parquet", progress=False)
    data = RewardTrainingSet(folder, tmp_path / "ann.parquet", fit_bins(tmp_path / "ann.parquet", ["width"]), ["width"],
                             features=tmp_path / "features")
    base = preset("smoke")
    latents = LatentConfig(space="vae", vae_path=models[0], normalisation=normalisation, sample_posterior=True)
    cfg = replace(base, latents=latents, text=replace(base.text, encoder="t5", path=models[1], max_tokens=8),
                  model=replace(base.model, channels=4, image_size=8))
    _, to_flow_data = data_encoders(cfg, data, torch.device("cpu"))
    items = [data[0], data[1]]
    stored = to_flow_data(torch.stack([it["image"] for it in items]), posterior_std(items, torch.device("cpu")),
                          torch.Generator().manual_seed(3))
    source = ImageFolderSource(folder)
    images = torch.stack([fit_to(source.item(source.sample_ids.index(it["sample_id"])).image(), 16) * 2 - 1 for it in items])
    live = VaeSpace(models[0], normalisation=normalisation, sample_posterior=True).encode(images, torch.Generator().manual_seed(3))
    assert live.abs().mean() > 0.05  # the tolerance below is small against the values compared
    torch.testing.assert_close(stored, live, atol=2e-3, rtol=2e-2)  # stored as float16
