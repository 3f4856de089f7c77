"""The shapes data unit keeps what the world did to each sample (corruptions, wrong captions) without changing
the render, and aggregation correlates every reward with it: the evidence that each reward sees its flaw."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from harness.aggregate import WORLD_FACTORS, data_correlations
from harness.datasources.shapes import prepare
from harness.store import Store
from harness.units import PlannedUnit, Unit
from miro.config import DataConfig, to_dict
from miro.data.build import SHAPES_SCORERS, WORLD_TABLE, data_key, shapes_dataset
from miro.errors import MiroError

SAMPLES = 96


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, PlannedUnit, DataConfig]:
    data = DataConfig(num_samples=SAMPLES, seed=3)
    store = Store(tmp_path_factory.mktemp("store"))
    key = store.register("data", {"data": to_dict(data), "code": "test"})
    prepare(store.work_dir(key), to_dict(data), threads=1)
    return store, PlannedUnit(Unit("data", key, {"data": to_dict(data)}), "data shapes"), data


def test_the_world_table_holds_each_samples_truth_and_the_render_is_unchanged(prepared) -> None:
    store, planned, data = prepared
    folder = store.work_dir(planned.unit.key) / data_key(data)
    world = pd.read_parquet(folder / WORLD_TABLE)
    assert list(world["sample_id"]) == list(range(SAMPLES)) and (folder / "done.json").is_file()
    dataset = shapes_dataset(data)
    images = load_file(str(folder / "images.safetensors"))["images"]
    for i in (0, 17, SAMPLES - 1):
        sample, item = dataset.sample(i), dataset[i]
        row = world.iloc[i]
        assert row["blur_sigma"] == sample.corruptions.blur_sigma and row["noise_std"] == sample.corruptions.noise_std
        assert row["caption_wrong"] == (sample.caption_error is not None) and row["n_objects"] == len(sample.objects)
        assert torch.equal(images[i], ((item["image"] + 1) * 127.5).round().to(torch.uint8))  # as the trainer always read it
    assert 0 < world["caption_wrong"].mean() < 1 and (world["blur_sigma"] > 0).any()


def test_aggregation_correlates_every_reward_with_every_factor(prepared) -> None:
    store, planned, _ = prepared
    table = data_correlations(store, [planned])
    assert table is not None and set(table["reward"]) == set(SHAPES_SCORERS) and set(table["factor"]) == set(WORLD_FACTORS)
    assert (table["n_samples"] == SAMPLES).all() and table["pearson"].dropna().between(-1, 1).all()
    r = table.set_index(["reward", "factor"])["pearson"]
    assert r[("shapes_alignment", "caption_wrong")] < -0.3  # a wrong caption is what alignment should see
    assert np.isfinite(r[("shapes_quality", "blur_sigma")])


def test_a_damaged_world_table_is_named_with_the_fix(prepared, tmp_path) -> None:
    import shutil

    store, planned, data = prepared
    copy = Store(tmp_path / "store")
    shutil.copytree(store.unit_dir(planned.unit.key), copy.unit_dir(planned.unit.key))
    world = copy.work_dir(planned.unit.key) / data_key(data) / WORLD_TABLE
    world.write_bytes(world.read_bytes()[:20])  # truncated
    with pytest.raises(MiroError, match=f"{WORLD_TABLE}.*run the same sweep command again"):
        data_correlations(copy, [planned])


def test_data_without_a_world_table_gives_no_correlations(tmp_path) -> None:
    store = Store(tmp_path / "store")
    key = store.register("data", {"data": "real"})
    (store.work_dir(key) / "some-data").mkdir(parents=True)
    assert data_correlations(store, [PlannedUnit(Unit("data", key, {}), "data folder")]) is None


def test_two_worker_processes_prepare_the_same_folder_as_one(prepared, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from miro.data import build

    store, planned, data = prepared
    one = store.work_dir(planned.unit.key) / data_key(data)
    monkeypatch.setattr(build, "PARALLEL_MIN_SAMPLES", SAMPLES // 2)  # the real threshold keeps tiny worlds in one process
    two = prepare(tmp_path, to_dict(data), threads=2)["folder"]
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in (tmp_path / data_key(data)).iterdir())
    pd.testing.assert_frame_equal(pd.read_parquet(one / "annotations.parquet"), pd.read_parquet(f"{two}/annotations.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(one / WORLD_TABLE), pd.read_parquet(f"{two}/{WORLD_TABLE}"))
    assert torch.equal(load_file(str(one / "images.safetensors"))["images"], load_file(f"{two}/images.safetensors")["images"])


def test_shards_of_a_run_interrupted_with_other_workers_do_not_outlive_the_merge(tmp_path) -> None:
    data = DataConfig(num_samples=SAMPLES, seed=5)
    folder = tmp_path / data_key(data)
    stale = folder / "annotations-1-of-2.parquet.parts"  # a two-worker run killed mid-shard, resumed with one
    stale.mkdir(parents=True)
    (stale / "part-1-0-0.parquet").write_bytes(b"unfinished")
    (folder / "annotations-0-of-2.parquet").write_bytes(b"finished shard")
    prepare(tmp_path, to_dict(data), threads=1)
    assert not list(folder.glob("annotations-*")) and (folder / "done.json").is_file()
