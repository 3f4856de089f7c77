"""The training data feed: what is trained is a pure function of (seed, position), whatever the number of
DataLoader workers or the step a run resumed from; a worker's error or death stops training with one line."""
from __future__ import annotations

import json
import os
import shutil
import signal
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import get_worker_info

from miro.bench_data import write_annotation, write_store
from miro.config import DataConfig, LatentConfig, RewardConfig, TextConfig
from miro.data.feature_store import Layout, StoredText, shard_name
from miro.data.loader import TrainingBatches, collate, training_batches
from miro.data.training_set import FeatureTrainingSet, fit_bins
from miro.errors import MiroError
from miro.presets import preset
from miro.rewards.binning import BinningOptions
from miro.train import train

REWARDS = ("aesthetic", "pickscore")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("store")
    write_store(folder, 10, Layout(latent_shape=(2, 4, 8, 8), text_dim=16, max_tokens=8), tokens=(3, 8))
    write_annotation(folder / "annotations.parquet", 10)
    return folder


def training_set(folder):
    annotation = folder / "annotations.parquet"
    return FeatureTrainingSet(folder, annotation, fit_bins(annotation, REWARDS, BinningOptions(bins=4)), REWARDS)


def config(folder):
    """The smoke run on 4 x 8 x 8 latents and 16-wide caption features, both read from the store (the T5 and
    VAE paths do not exist: the trainer never loads them); 10 samples at batch 4, so step 3 is mid-epoch."""
    base = preset("smoke")
    return replace(base, data=DataConfig(source="folder", path=str(folder), annotations=str(folder / "annotations.parquet"),
                                         features=str(folder), resolution=16),
                   rewards=RewardConfig(names=REWARDS, scheme="tokens", caption_dropout=0.5, bins=4),
                   text=TextConfig(encoder="t5", path=str(folder / "no-t5"), max_tokens=8),
                   latents=LatentConfig(space="vae", vae_path=str(folder / "no-vae"), sample_posterior=True),
                   model=replace(base.model, image_size=8, channels=4, patch_size=4),
                   optim=replace(base.optim, steps=6, batch_size=4), checkpoint_every=3, log_every=1)


def weights(run):
    return {name: load_file(run / "checkpoints" / "step-0000006" / name) for name in ("train.safetensors", "ema.safetensors")}


def test_workers_and_a_mid_epoch_resume_do_not_change_what_is_trained(store, tmp_path):
    cfg, data = config(store), training_set(store)
    train(cfg, data, tmp_path / "in-process", workers=0, progress=False)
    train(cfg, data, tmp_path / "two-workers", workers=2, progress=False)
    train(cfg, data, tmp_path / "resumed", workers=2, stop_at=3, progress=False)  # position 12 of 10 samples: mid-epoch
    train(cfg, data, tmp_path / "resumed", workers=2, progress=False)
    reference = weights(tmp_path / "in-process")
    for run in ("two-workers", "resumed"):
        other = weights(tmp_path / run)
        for name, tensors in reference.items():
            assert tensors.keys() == other[name].keys()
            assert all(torch.equal(tensors[k], other[name][k]) for k in tensors), (run, name)
    log = [json.loads(line) for line in (tmp_path / "two-workers" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 6 and all(0 <= record["data_wait"] <= 1 for record in log)


def test_ranks_read_disjoint_samples_and_each_micro_batch_in_order():
    ranks = [list(TrainingBatches(0, 2, 2, world=2, rank=r, micro=3, n=12, seed=0)) for r in range(2)]
    assert [len(b) for b in ranks[0]] == [3] * 4
    first_epoch = [i for step in range(2) for m in range(2) for r in range(2) for i in ranks[r][step * 2 + m]][:12]
    assert sorted(first_epoch) == list(range(12))  # one epoch, split between ranks and micro-batches, each sample once
    assert list(TrainingBatches(1, 2, 2, 2, 0, 3, 12, 0)) == ranks[0][2:]  # a resume at step 1 reads what step 1 read


def test_a_damaged_record_stops_training_with_one_line_naming_the_file(store, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(store, damaged)
    data_file = damaged / f"{shard_name(0, 2)}.bin"
    raw = bytearray(data_file.read_bytes())
    raw[10] ^= 0xFF  # inside sample 0's record
    data_file.write_bytes(bytes(raw))
    with pytest.raises(MiroError) as error:
        train(config(damaged), training_set(damaged), tmp_path / "run", workers=2, progress=False)
    assert str(error.value).startswith(f"{data_file}: the record of sample 0 at byte 0 fails its checksum")
    assert "\n" not in str(error.value)  # the worker's error, not its traceback


class DiesInAWorker:
    """Items of a file-backed dataset, whose worker process is killed (as by the OOM killer) at item 5."""

    reads_files = True

    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 5 and get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return {"image": torch.zeros(3, 4, 4), "caption": "a red circle", "rewards": torch.zeros(0)}


def test_a_worker_that_dies_stops_training_with_an_error_not_a_hang():
    order = TrainingBatches(0, 4, 1, 1, 0, micro=2, n=8, seed=0)
    with pytest.raises(MiroError, match=r"a data-loading worker died \(DataLoader worker .*rerun the same command to resume"):
        list(training_batches(DiesInAWorker(), order, rewards=0, max_tokens=8, workers=1, pin_memory=False))


def test_caption_states_travel_trimmed_and_are_padded_where_the_step_runs() -> None:
    """A batch carries each caption's states end to end (cut to max_tokens); StoredText pads them back, with the
    stored null caption for a caption that dropout emptied."""
    g = torch.Generator().manual_seed(0)
    states = {c: torch.randn(n, 3, generator=g).half() for c, n in (("a red cube", 2), ("two blue balls", 6), ("x", 0))}
    items = [{"image": torch.zeros(1, 2, 2), "rewards": [0.5], "caption": c, "text_embedding": t} for c, t in states.items()]
    batch = collate(items, rewards=1, max_tokens=4)
    assert batch.text is not None and batch.text.shape == (2 + 4 + 0, 3) and batch.text_tokens.tolist() == [2, 4, 0]
    null = torch.randn(1, 3, generator=g).half()
    encoder = StoredText(null, max_tokens=4)
    encoder.hold(batch.captions, batch.text, batch.text_tokens)
    text, mask = encoder.encode(["two blue balls", "", "a red cube", "x"])
    assert text.dtype == torch.float32 and text.shape == (4, 4, 3)
    for row, expected in enumerate([states["two blue balls"][:4], null, states["a red cube"], states["x"]]):
        n = len(expected)
        assert torch.equal(text[row, :n], expected.float()) and not text[row, n:].any()
        assert mask[row].tolist() == [True] * n + [False] * (4 - n)
