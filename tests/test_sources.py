"""Sources: image folders and webdataset shards read the same way; bad samples become failed items."""
from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

from miro.data.sources import (
    DatasetSource,
    ImageFolderSource,
    ItemError,
    WebDatasetSource,
    as_source,
    fit_to,
    sample_id_for,
)
from miro.errors import MiroError


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
