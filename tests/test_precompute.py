"""Precompute and the feature store: tiny random AutoencoderKL and T5 saved with save_pretrained, loaded back
through the real code.

The tokenizer is a `tokenizers` WordLevel model wrapped in PreTrainedTokenizerFast (no sentencepiece
model is available offline); AutoTokenizer loads it from the same folder as the T5 weights.
"""
from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from miro.data.annotate import annotate
from miro.data.feature_store import FeatureStore, shard_name
from miro.data.loader import collate
from miro.data.precompute import PrecomputeOptions, encode_captions, encode_images, load_text_encoder, load_vae, precompute
from miro.data.sources import ImageFolderSource, fit_to
from miro.data.training_set import FeatureTrainingSet, RewardTrainingSet, fit_bins
from miro.errors import MiroError
from miro.rewards.base import Scorer, ScorerInfo
from miro.tiny.models import save_tiny_t5, save_tiny_vae


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
    return PrecomputeOptions(**{"vae_path": vae, "text_path": t5, "resolution": 16, "max_tokens": 8, "batch_size": 3,
                                "workers": 0, "max_failed": 1.0, **overrides})


def test_features_match_the_encoders(models, folder, tmp_path):
    report = precompute(folder, tmp_path / "features", options(models), commit_every=3, progress=False)
    assert report.samples == 7 and report.stored == 6 and list(report.failed) == [4] and "unreadable image" in report.failed[4]
    store = FeatureStore(tmp_path / "features")
    assert store.kinds == ["latent", "text"] and len(store) == 6 and store.failed == 1
    assert store.rows_of(np.array([2, 4, 99])).tolist() == [2, -1, -1]
    vae = load_vae(models[0])
    encoder = load_text_encoder(models[1], max_tokens=8)
    source = ImageFolderSource(folder)
    item = source.item(source.sample_ids.index(2))
    mean, std = encode_images(vae, fit_to(item.image(), 16)[None])
    hidden, mask = encoder.encode([item.caption])
    record = store.read(2)
    assert record.sample_id == 2 and record.latent.shape == (2, 4, 8, 8) and record.latent.dtype == torch.float16
    torch.testing.assert_close(record.latent[0].float(), mean[0], atol=2e-3, rtol=2e-3)  # stored unscaled, as float16
    torch.testing.assert_close(record.latent[1].float(), std[0], atol=2e-3, rtol=2e-3)
    assert mask[0].tolist() == [True] * 6 + [False] * 2 and record.text.shape == (6, 16)  # trimmed to the real tokens
    torch.testing.assert_close(record.text.float(), hidden[0, :6], atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(encode_captions(encoder, [item.caption])[0], hidden[0, :6])
    longer, _ = load_text_encoder(models[1], max_tokens=12).encode([item.caption])
    torch.testing.assert_close(longer[0, :6], hidden[0, :6])  # T5 masks the padding: the real tokens' states do not depend on it
    assert store.bytes_read == store.layout.record_bytes(6) == (2 * 4 * 8 * 8 + 6 * 16) * 2  # one read touches one record


def test_a_damaged_or_old_store_is_named_never_misread(models, folder, tmp_path):
    out = tmp_path / "features"
    precompute(folder, out, options(models), progress=False)
    data = out / f"{shard_name(0, 1)}.bin"
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(MiroError, match=rf"{data}: the record of sample 0 at byte 0 fails its checksum .*rerun precompute for shard 0/1"):
        FeatureStore(out).read(0)
    data.write_bytes(bytes(raw[:-10]))
    with pytest.raises(MiroError, match=rf"{data} is truncated .*delete shard-00000-of-00001"):
        FeatureStore(out)
    old = tmp_path / "old"
    old.mkdir()
    (old / "part-00000-1-2.parquet").write_bytes(b"PAR1")
    with pytest.raises(MiroError, match=r"earlier format \(parquet parts, miro.features/1\).*python -m miro precompute"):
        FeatureStore(old)


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
        precompute(StopAt(ImageFolderSource(folder), 5), out, options(models), commit_every=100, progress=False)
    with pytest.raises(MiroError, match="not finished: 0 of 1 shards complete"):
        FeatureStore(out)
    commit = json.loads((out / f"{shard_name(0, 1)}.json").read_text())
    assert commit["rows"] == 3 and not commit["complete"]  # the finished batch was kept
    for ext in (".bin", ".idx"):  # what a writer killed after its last commit leaves behind
        with open(out / f"{shard_name(0, 1)}{ext}", "ab") as f:
            f.write(b"half a record")
    report = precompute(folder, out, options(models), progress=False)
    assert report.samples == 4 and report.skipped == 3 and report.stored == 6
    assert FeatureStore(out).rows_of(np.arange(7)).tolist() == [0, 1, 2, 3, -1, 4, 5]
    assert precompute(folder, out, options(models), progress=False).samples == 0


def test_shards_write_side_by_side_and_other_encoders_are_refused(models, folder, tmp_path):
    out = tmp_path / "features"
    precompute(folder, out, options(models, vae_path=""), shard_index=0, shard_count=2, progress=False)
    with pytest.raises(MiroError, match="not finished: 1 of 2 shards complete"):
        FeatureStore(out)
    precompute(folder, out, options(models, vae_path=""), shard_index=1, shard_count=2, progress=False)
    store = FeatureStore(out)
    assert store.kinds == ["text"] and store.sample_ids.tolist() == list(range(7))  # without a VAE the image is not read
    with pytest.raises(MiroError, match="was written with other encoders"):
        precompute(folder, out, options(models, vae_path="", max_tokens=12), shard_index=1, shard_count=2, progress=False)
    with pytest.raises(MiroError, match="holds shards of another sharding"):
        precompute(folder, out, options(models, vae_path=""), shard_index=0, shard_count=3, progress=False)
    other = tmp_path / "other_vae"
    save_tiny_vae(other, seed=1)
    precompute(folder, tmp_path / "f2", options(models, text_path=""), progress=False)
    with pytest.raises(MiroError, match="was written with other encoders"):
        precompute(folder, tmp_path / "f2", options(models, text_path="", vae_path=str(other)), progress=False)


def test_option_and_path_refusals(models, folder, tmp_path):
    with pytest.raises(MiroError, match="nothing to do"):
        PrecomputeOptions()
    with pytest.raises(MiroError, match="max_failed = 2"):
        PrecomputeOptions(vae_path="x", max_failed=2)
    with pytest.raises(MiroError, match="has no config.json"):
        load_vae(str(tmp_path))
    with pytest.raises(MiroError, match="does not exist"):
        FeatureStore(tmp_path / "nothing")
    with pytest.raises(MiroError, match="resolution = 17 is not a multiple of the VAE's downsampling factor 2"):
        precompute(folder, tmp_path / "odd", options(models, resolution=17), progress=False)


def test_unreadable_samples_past_the_threshold_fail_after_the_shard_is_written(models, folder, tmp_path):
    with pytest.raises(MiroError, match=r"1 of 7 samples \(14.3%\) could not be read, more than the allowed 1.0% \(first: sample 4: "
                                        r"unreadable image.*what was read is stored"):
        precompute(folder, tmp_path / "features", options(models, max_failed=0.01), progress=False)
    assert len(FeatureStore(tmp_path / "features")) == 6  # nothing lost: the shard is complete and readable
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "000.png").write_bytes(b"corrupt")
    (tmp_path / "broken" / "000.txt").write_text("a red square")
    with pytest.raises(MiroError, match="stored nothing: all 1 samples failed"):
        precompute(tmp_path / "broken", tmp_path / "f2", options(models), progress=False)


def test_a_truncated_tar_stops_precompute_naming_it_and_keeps_what_was_read(models, tmp_path):
    import webdataset as wds

    shards = tmp_path / "shards"
    shards.mkdir()
    with wds.TarWriter(str(tmp_path / "full.tar")) as sink:
        for i in range(4):
            image = io.BytesIO()
            Image.new("RGB", (16, 16), (60 * i, 0, 0)).save(image, "PNG")
            sink.write({"__key__": f"{i:06d}", "png": image.getvalue(), "txt": "a photo of a red square"})
    with tarfile.open(tmp_path / "full.tar") as tar:
        cut = tar.getmember("000002.png").offset_data + 10  # in the middle of sample 2's image
    (shards / "cut.tar").write_bytes((tmp_path / "full.tar").read_bytes()[:cut])
    with pytest.raises(MiroError, match=r"cut.tar: unreadable after \d+ members .*the samples before the damage are stored"):
        precompute(shards, tmp_path / "features", options(models), progress=False)
    assert FeatureStore(tmp_path / "features").sample_ids.tolist() == [0, 1]


class Width(Scorer):
    info = ScorerInfo("width", "1")

    def score(self, images, prompts):
        return torch.full((len(images),), images.shape[-1] / 100)


def test_training_set_serves_latents_and_text(models, folder, tmp_path):
    precompute(folder, tmp_path / "features", options(models), progress=False)
    annotate(folder, [Width()], tmp_path / "ann.parquet", progress=False, max_failed=1.0)
    bins = fit_bins(tmp_path / "ann.parquet", ["width"])
    data = FeatureTrainingSet(tmp_path / "features", tmp_path / "ann.parquet", bins, ["width"])
    assert len(data) == 6 and data.excluded == {"unreadable (every scorer failed)": 1} and data.reads_files
    assert [p.name for p in (tmp_path / "features" / "training").iterdir() if p.is_dir()] == [data.index.name]
    item = data[0]
    assert item["image"].shape == (4, 8, 8) and item["latent_std"].shape == (4, 8, 8) and item["text_embedding"].shape == (6, 16)
    torch.testing.assert_close(item["image"], FeatureStore(tmp_path / "features").read(0).latent[0])
    assert item["caption"] == "a photo of a red square"
    widths = torch.stack([data[i]["rewards"][0] for i in range(len(data))])  # images are 20 + i pixels wide: rewards rise with the id
    assert [data[i]["sample_id"] for i in range(len(data))] == [0, 1, 2, 3, 5, 6]
    assert widths[0] == 0.0 and widths[-1] == 1.0 and bool((widths[1:] > widths[:-1]).all())
    assert FeatureTrainingSet(tmp_path / "features", tmp_path / "ann.parquet", bins, ["width"]).index == data.index  # built once
    text_only = tmp_path / "text"
    precompute(folder, text_only, options(models, vae_path=""), progress=False)
    pixels = RewardTrainingSet(folder, tmp_path / "ann.parquet", bins, ["width"], resolution=16, features=text_only)
    assert pixels[0]["image"].shape == (3, 16, 16) and pixels[0]["text_embedding"].shape == (6, 16)


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
    annotate(folder, [Width()], tmp_path / "ann.parquet", progress=False, max_failed=1.0)
    data = FeatureTrainingSet(tmp_path / "features", tmp_path / "ann.parquet", fit_bins(tmp_path / "ann.parquet", ["width"]), ["width"])
    base = preset("smoke")
    latents = LatentConfig(space="vae", vae_path=models[0], normalisation=normalisation, sample_posterior=True)
    cfg = replace(base, latents=latents, text=replace(base.text, encoder="t5", path=models[1], max_tokens=8),
                  model=replace(base.model, channels=4, image_size=8))
    _, to_flow_data = data_encoders(cfg, data, torch.device("cpu"))
    items = [data[0], data[1]]
    batch = collate(items, rewards=1, max_tokens=8)
    stored = to_flow_data(batch.images.float(), posterior_std(batch, torch.device("cpu")), torch.Generator().manual_seed(3))
    source = ImageFolderSource(folder)
    images = torch.stack([fit_to(source.item(source.sample_ids.index(it["sample_id"])).image(), 16) * 2 - 1 for it in items])
    live = VaeSpace(models[0], normalisation=normalisation, sample_posterior=True).encode(images, torch.Generator().manual_seed(3))
    assert live.abs().mean() > 0.05  # the tolerance below is small against the values compared
    torch.testing.assert_close(stored, live, atol=2e-3, rtol=2e-2)  # stored as float16
