"""Sources (folders and webdataset shards read the same way, bad samples become failed items) and the
training set built on a source, its annotation and its bins."""
from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pandas as pd
import pytest
import torch
import webdataset as wds
from PIL import Image

from miro.data.annotate import annotate
from miro.data.sources import (
    DatasetSource,
    ImageFolderSource,
    ItemError,
    WebDatasetSource,
    as_source,
    fit_to,
    sample_id_for,
)
from miro.data.training_set import RewardTrainingSet, fit_bins
from miro.errors import MiroError
from miro.rewards.base import Scorer, ScorerInfo
from miro.rewards.binning import BinEdges, BinningOptions


def png(color: tuple[int, int, int], size: tuple[int, int] = (8, 6), fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_sample_ids_from_keys():
    assert sample_id_for("00000/000000123") == 123
    hashed = sample_id_for("photos/cat")
    assert hashed == sample_id_for("photos/cat") and 0 <= hashed < 2**63 and hashed != sample_id_for("photos/dog")


def test_image_folder_reads_sidecars_and_records_failures(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "000001.png").write_bytes(png((255, 0, 0)))
    (tmp_path / "000001.txt").write_text("a red square\n")
    (tmp_path / "000001.json").write_text(json.dumps({"aesthetic_score": 0.7}))
    (tmp_path / "000001.latent_mean.npy").write_bytes(npy(np.ones((4, 2, 2), np.float16)))
    (tmp_path / "sub" / "000002.jpg").write_bytes(png((0, 0, 255), fmt="JPEG"))
    (tmp_path / "sub" / "000002.txt").write_text("blue")
    (tmp_path / "000003.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "000003.txt").write_text("corrupt")
    (tmp_path / "000004.png").write_bytes(png((0, 255, 0)))  # no caption
    (tmp_path / "000005.txt").write_text("caption without an image")
    (tmp_path / "README.md").write_text("ignored")

    source = ImageFolderSource(tmp_path)
    assert sorted(source.sample_ids) == [1, 2, 3, 4, 5]
    items = {source.sample_ids[i]: source.item(i) for i in range(len(source))}
    first = items[1]
    assert first.caption == "a red square" and first.fields["json"] == {"aesthetic_score": 0.7}
    assert first.fields["latent_mean"].shape == (4, 2, 2)
    image = first.image()
    assert image.shape == (3, 6, 8) and image.dtype == torch.float32
    assert torch.allclose(image[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert items[2].image().shape == (3, 6, 8)
    with pytest.raises(ItemError, match="unreadable image"):
        items[3].image()
    assert "no caption" in items[4].error
    assert "no image" in items[5].error
    with pytest.raises(ItemError, match="no caption"):
        items[4].image()


def test_image_folder_refuses_duplicate_ids_and_empty_folders(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "12.png").write_bytes(png((1, 2, 3)))
    with pytest.raises(MiroError, match='keys "a/12" and "b/12" both give sample_id 12'):
        ImageFolderSource(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MiroError, match="holds no images"):
        ImageFolderSource(tmp_path / "empty")
    with pytest.raises(MiroError, match="does not exist"):
        ImageFolderSource(tmp_path / "missing")


def write_shard(path, samples):
    with wds.TarWriter(str(path)) as sink:
        for sample in samples:
            sink.write(sample)


def test_webdataset_random_access_and_corrupt_members(tmp_path):
    write_shard(tmp_path / "data-000.tar", [
        {"__key__": "000010", "png": png((255, 255, 0)), "txt": "yellow", "json": json.dumps({"clip_score": 0.3}).encode(),
         "latent_mean.npy": npy(np.zeros((4, 2, 2), np.float16))},
        {"__key__": "000011", "jpg": b"garbage", "txt": "bad image"},
        {"__key__": "000012", "png": png((9, 9, 9)), "txt": "bad json", "json": b"{oops"},
    ])
    write_shard(tmp_path / "data-001.tar", [{"__key__": "000020", "png": png((0, 0, 0)), "txt": "black"}])
    source = WebDatasetSource(str(tmp_path / "data-{000..001}.tar"))
    assert source.sample_ids == [10, 11, 12, 20] and source.problems == []
    last = source.item(3)
    assert last.caption == "black" and last.image().shape == (3, 6, 8)
    first = source.item(0)
    assert first.fields["json"]["clip_score"] == 0.3 and first.fields["latent_mean"].dtype == np.float16
    assert source.item(1).error == ""
    with pytest.raises(ItemError, match="unreadable image"):
        source.item(1).image()
    assert "JSONDecodeError" in source.item(2).error
    assert WebDatasetSource(tmp_path).sample_ids == source.sample_ids  # a directory of shards


def test_truncated_shard_keeps_complete_samples(tmp_path):
    samples = [{"__key__": f"{i:06d}", "png": png((i, i, i), size=(32, 32)), "txt": f"sample {i}"} for i in range(6)]
    write_shard(tmp_path / "full.tar", samples)
    data = (tmp_path / "full.tar").read_bytes()
    with tarfile.open(tmp_path / "full.tar") as tar:
        image3 = tar.getmember("000003.png")
    cut = image3.offset_data + 10  # in the middle of sample 3's png
    (tmp_path / "cut.tar").write_bytes(data[:cut])
    source = WebDatasetSource(tmp_path / "cut.tar")
    assert source.sample_ids == [0, 1, 2]  # sample 3 and what follows cannot be reached
    assert len(source.problems) == 1 and "cut.tar: unreadable after 6 members" in source.problems[0]
    for i in range(3):
        assert source.item(i).image().shape == (3, 32, 32)
    # a member cut at the very end of the file: its sample is there, with the reason it failed
    with tarfile.open(tmp_path / "full.tar") as tar:
        caption5 = tar.getmember("000005.txt")
    (tmp_path / "end.tar").write_bytes(data[: caption5.offset_data + 3])
    source = WebDatasetSource(tmp_path / "end.tar")
    assert source.sample_ids == [0, 1, 2, 3, 4, 5]
    assert "000005: no caption" in source.item(5).error


def test_webdataset_refusals(tmp_path):
    with pytest.raises(MiroError, match="no webdataset shards"):
        WebDatasetSource(tmp_path)
    (tmp_path / "x.tar.gz").write_bytes(b"")
    with pytest.raises(MiroError, match="not an uncompressed .tar"):
        WebDatasetSource(tmp_path / "x.tar.gz")


class FakeDataset:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == 2:
            raise RuntimeError("render failed")
        return {"image": torch.full((3, 4, 4), -1.0), "caption": f"c{i}", "sample_id": i, "extra": i * 10}


def test_dataset_source_maps_to_unit_range_and_checks_ids():
    source = as_source(FakeDataset(4))
    assert isinstance(source, DatasetSource) and source.sample_ids == [0, 1, 2, 3]
    item = source.item(1)
    assert item.caption == "c1" and item.fields == {"extra": 10}
    assert torch.equal(item.image(), torch.zeros(3, 4, 4))
    assert "render failed" in source.item(2).error
    wrong = FakeDataset(3)
    wrong.sample_ids = [5, 6, 7]
    with pytest.raises(MiroError, match="has sample_id 0, expected 5"):
        DatasetSource(wrong).item(0)


def test_fit_to_resizes_and_center_crops():
    image = torch.rand(3, 20, 40)
    out = fit_to(image, 16)
    assert out.shape == (3, 16, 16)
    assert fit_to(out, 16) is out


# ---- the training set built on a source, its annotation and bins ---------------------------------------

class Levels:
    """Images in [-1, 1] whose brightness rises with the id; captions repeat every 4 samples."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"image": torch.full((3, 8, 8), 2 * i / (self.n - 1) - 1), "caption": f"level {i % 4}", "sample_id": i}


class Fake(Scorer):
    def __init__(self, name, fn):
        self.info, self.fn = ScorerInfo(name, "1"), fn

    def score(self, images, prompts):
        return self.fn(images, prompts)


def bright(images, prompts):
    return images.mean(dim=(1, 2, 3))


def gappy(images, prompts):
    """-brightness, NaN on every 10th sample (brightness 0, 10/(n-1), ...), failing on 'level 3'."""
    if any(p == "level 3" for p in prompts):
        raise RuntimeError("no")
    return torch.tensor([float("nan") if round(float(m) * 99) % 10 == 0 else -float(m) for m in images.mean(dim=(1, 2, 3))])


@pytest.fixture
def annotated(tmp_path):
    out = tmp_path / "ann.parquet"
    annotate(Levels(100), [Fake("bright", bright), Fake("gappy", gappy)], out, batch_size=16, progress=False, max_failed=1.0)
    return out


def test_training_set_items_and_exclusions(annotated):
    bins = fit_bins(annotated, ["bright", "gappy"], BinningOptions(bins=8))
    assert (annotated.parent / "ann.bins.json").is_file()
    data = RewardTrainingSet(Levels(100), annotated, bins, ["gappy", "bright"])
    assert data.excluded == {"gappy: failed": 25, "gappy: nan": 10}  # ids 3, 7, ... fail; 0, 10, ... are NaN
    assert len(data) == 65 and "excluded 35" in data.summary()
    item = data[5]
    sid = item["sample_id"]
    assert item["image"].shape == (3, 8, 8) and torch.allclose(item["image"], torch.full((3, 8, 8), 2 * sid / 99 - 1), atol=1e-6)
    assert item["caption"] == f"level {sid % 4}" and item["rewards"].dtype == torch.float32
    expected = torch.stack([bins.to_unit("gappy", [-sid / 99]), bins.to_unit("bright", [sid / 99])], dim=1)[0]
    assert torch.equal(item["rewards"], expected)
    assert set(item["rewards"].tolist()) <= {k / 7 for k in range(8)}
    only_bright = RewardTrainingSet(Levels(100), annotated, bins, ["bright"])
    assert len(only_bright) == 100 and only_bright.excluded == {}
    same_as_full = RewardTrainingSet(Levels(100), annotated, bins, ["bright"], require_ok=["bright", "gappy"])
    assert same_as_full.sample_ids == data.sample_ids  # arms that condition on fewer rewards can share the data


def test_training_set_refusals(annotated, tmp_path):
    bins = fit_bins(annotated, ["bright"])
    with pytest.raises(MiroError, match='unknown reward "brigth" \\(did you mean "bright"\\?\\)'):
        RewardTrainingSet(Levels(100), annotated, bins, ["brigth"])
    with pytest.raises(MiroError, match='reward "gappy" has no bin edges'):
        RewardTrainingSet(Levels(100), annotated, bins, ["gappy"])
    with pytest.raises(MiroError, match="not .*BinningOptions"):
        fit_bins(annotated, ["gappy"], BinningOptions(bins=16))
    assert fit_bins(annotated, ["gappy"]).names == ["bright", "gappy"]  # added, "bright" untouched
    assert torch.equal(BinEdges.load(annotated.parent / "ann.bins.json").get("bright").edges, bins.get("bright").edges)


def test_training_set_counts_unannotated_and_missing_samples(annotated):
    bins = fit_bins(annotated, ["bright"])
    bigger = RewardTrainingSet(Levels(120), annotated, bins, ["bright"])
    assert bigger.excluded == {"not annotated": 20}
    ids = Levels(60)
    ids.sample_ids = list(range(60))
    smaller = RewardTrainingSet(ids, annotated, bins, ["bright"])
    assert smaller.excluded == {"annotated but not in the source": 40}


def test_shapes_world_in_memory(tmp_path):
    shapes = pytest.importorskip("miro.data.shapes")
    world = shapes.ShapesDataset(shapes.ShapesWorldConfig(), 64, 0)
    annotate(world, [Fake("bright", bright)], tmp_path / "ann.parquet", progress=False)
    data = RewardTrainingSet(world, tmp_path / "ann.parquet", fit_bins(tmp_path / "ann.parquet", ["bright"]), ["bright"])
    assert len(data) == 64 and data[7]["rewards"].shape == (1,) and not data.reads_files  # held in memory: no loader workers
    assert torch.allclose(data[7]["image"], world[7]["image"], atol=1e-6) and data[7]["caption"] == world[7]["caption"]


def test_a_dry_run_counts_tar_samples_without_reading_every_tar(tmp_path):
    for shard in range(3):
        write_shard(tmp_path / f"data-{shard:03d}.tar", [{"__key__": f"{shard}{i:05d}", "png": png((i, i, i)), "txt": "x"} for i in range(4)])
    source = WebDatasetSource(tmp_path)
    assert source.estimated_len() == 12  # the first tar's 4 samples times 3 tars
    for shard in range(3):  # img2dataset's per-tar stats are exact
        (tmp_path / f"data-{shard:03d}_stats.json").write_text(json.dumps({"successes": 4 + shard}))
    assert source.estimated_len() == 15


def test_a_task_streams_only_its_own_tars(tmp_path):
    from miro.data.sources import SourceItem, task_items

    for shard in range(3):
        write_shard(tmp_path / f"data-{shard:03d}.tar", [{"__key__": f"{shard}{i:05d}", "png": png((i, i, i)), "txt": "x"} for i in range(2)])
    source = WebDatasetSource(tmp_path)
    ids = [[item.sample_id for item in task_items(source, task, 2) if isinstance(item, SourceItem)] for task in range(2)]
    assert ids == [[0, 1, 200000, 200001], [100000, 100001]]  # tars 0 and 2, then tar 1
    assert "_index" not in vars(source)  # streaming indexed nothing


def test_a_truncated_tar_stops_annotation_naming_it_and_keeps_what_was_read(tmp_path):
    samples = [{"__key__": f"{i:06d}", "png": png((i, i, i), size=(32, 32)), "txt": f"sample {i}"} for i in range(6)]
    write_shard(tmp_path / "full.tar", samples)
    with tarfile.open(tmp_path / "full.tar") as tar:
        cut = tar.getmember("000003.png").offset_data + 10
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "cut.tar").write_bytes((tmp_path / "full.tar").read_bytes()[:cut])
    out = tmp_path / "ann.parquet"
    with pytest.raises(MiroError, match=r"cut.tar: unreadable after \d+ members .*the samples before the damage are scored and kept"):
        annotate(tmp_path / "shards", [Fake("bright", bright)], out, progress=False, workers=0)
    assert sorted(pd.read_parquet(out)["sample_id"]) == [0, 1, 2]
