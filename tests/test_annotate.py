"""Annotation: scores to parquet, resumable after a crash, shardable, failures recorded, fingerprints pinned."""
from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
import webdataset as wds
from PIL import Image

from miro.data.annotate import annotate, import_scores, merge_annotations, read_annotation, summarize
from miro.data.sources import WebDatasetSource
from miro.errors import MiroError
from miro.rewards import registry
from miro.rewards.base import Scorer, ScorerInfo


class FakeScorer(Scorer):
    """Records what it scored; `fn(images, prompts)` gives the scores."""

    def __init__(self, name, fn, version="1"):
        self.info = ScorerInfo(name, version)
        self.fn = fn
        self.seen: list[str] = []

    def score(self, images, prompts):
        self.seen += list(prompts)
        return self.fn(images, prompts)


def brightness(version="1"):
    return FakeScorer("bright", lambda x, p: x.mean(dim=(1, 2, 3)), version)


def length():
    return FakeScorer("length", lambda x, p: torch.tensor([len(c) / 10 for c in p]))


class Gray:
    """A map-style dataset of grey images in [-1, 1]: sample i has brightness i / (n - 1)."""

    def __init__(self, n=20):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        level = i / (self.n - 1)
        return {"image": torch.full((3, 8, 8), level * 2 - 1), "caption": "x" * (i % 5 + 1), "sample_id": i}


def test_scores_land_in_a_wide_parquet_with_fingerprints(tmp_path):
    out = tmp_path / "ann.parquet"
    report = annotate(Gray(), [brightness(), length()], out, batch_size=6, progress=False)
    assert report.samples == 20 and report.scored == 40 and not report.failed and not report.nan
    table = pd.read_parquet(out)
    assert list(table.columns) == ["sample_id", "caption", "bright", "bright__status", "bright__error",
                                   "length", "length__status", "length__error"]
    assert table["bright"].tolist() == pytest.approx([i / 19 for i in range(20)])
    assert table["length"].tolist() == pytest.approx([(i % 5 + 1) / 10 for i in range(20)])
    assert (table["bright__status"] == "ok").all() and (table["bright__error"] == "").all()
    meta = json.loads(pq.read_schema(out).metadata[b"miro.annotation"])
    assert meta["scorers"]["bright"]["fingerprint"] == ScorerInfo("bright", "1").fingerprint()
    assert meta["shard"] == [0, 1]
    assert not (tmp_path / "ann.parquet.parts").exists()


def png(level: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (level,) * 3).save(buffer, format="PNG")
    return buffer.getvalue()


def test_corrupt_images_nan_scores_and_scorer_errors_become_rows(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(10):
        (folder / f"{i:04d}.png").write_bytes(png(i * 20) if i != 3 else b"\x89PNG broken")
        (folder / f"{i:04d}.txt").write_text(f"caption {i}")

    def picky(images, prompts):
        if any(p == "caption 7" for p in prompts):
            raise RuntimeError("cannot score caption 7")
        return torch.tensor([float("nan") if p == "caption 5" else 1.0 for p in prompts])

    report = annotate(folder, [brightness(), FakeScorer("picky", picky)], tmp_path / "a.parquet", batch_size=4, progress=False,
                      max_failed=0.3)
    assert report.total == 10 and sorted(report.unusable) == [3, 5, 7] and "unreadable image" in report.unusable[3]
    assert "3 of 10 samples without a usable score: sample 3: bright: unreadable image" in report.line()
    table = read_annotation(tmp_path / "a.parquet").set_index("sample_id")
    assert len(table) == 10  # nothing dropped
    assert table.loc[3, "bright__status"] == "failed" and "unreadable image" in table.loc[3, "bright__error"]
    assert table.loc[3, "picky__status"] == "failed"
    assert table.loc[5, "picky__status"] == "nan" and math.isnan(table.loc[5, "picky"])
    assert table.loc[7, "picky__status"] == "failed" and "cannot score caption 7" in table.loc[7, "picky__error"]
    assert (table.drop(index=[3, 5, 7])["picky__status"] == "ok").all()
    assert (table.drop(index=[3])["bright__status"] == "ok").all()
    assert report.failed == {"bright": 1, "picky": 2} and report.nan == {"picky": 1}
    stats = summarize(tmp_path / "a.parquet")["stats"]
    assert stats.loc["picky", "nan"] == 1 and stats.loc["picky", "failed"] == 2 and stats.loc["bright", "count"] == 9


def test_rerun_adds_only_missing_pairs(tmp_path):
    out = tmp_path / "ann.parquet"
    annotate(Gray(), [brightness()], out, progress=False)
    again, extra = brightness(), length()
    report = annotate(Gray(), [again, extra], out, progress=False)
    assert again.seen == [] and len(extra.seen) == 20
    assert report.samples == 20 and report.scored == 20
    assert annotate(Gray(), [brightness(), length()], out, progress=False).samples == 0
    table = pd.read_parquet(out)
    assert (table[["bright__status", "length__status"]] == "ok").all().all()


class Interrupt(Scorer):
    """Interrupts the run (like Ctrl-C) when asked to score sample `at`; counts flushed part files."""

    info = ScorerInfo("bright", "1")

    def __init__(self, at, parts_dir):
        self.at, self.parts_dir, self.parts_seen = at, parts_dir, 0

    def score(self, images, prompts):
        self.parts_seen = max(self.parts_seen, len(list(self.parts_dir.glob("part-*.parquet"))) if self.parts_dir.exists() else 0)
        if any(torch.isclose(images.mean(dim=(1, 2, 3)), torch.tensor(self.at / 39))):
            raise KeyboardInterrupt
        return images.mean(dim=(1, 2, 3))


def test_interrupted_run_keeps_flushed_rows_and_resumes(tmp_path):
    out = tmp_path / "ann.parquet"
    crash = Interrupt(at=25, parts_dir=tmp_path / "ann.parquet.parts")
    with pytest.raises(KeyboardInterrupt):
        annotate(Gray(40), [crash], out, batch_size=5, progress=False)
    assert crash.parts_seen == 5  # a part after every batch, not only at the end
    assert not out.exists()
    saved = read_annotation(out)  # reads the parts of the unfinished run
    assert saved["sample_id"].tolist() == list(range(25))
    resumed = brightness()
    annotate(Gray(40), [resumed], out, batch_size=5, progress=False)
    assert len(resumed.seen) == 15
    table = pd.read_parquet(out)
    assert table["bright"].tolist() == pytest.approx([i / 39 for i in range(40)])
    assert not (tmp_path / "ann.parquet.parts").exists()


def test_many_batches_are_compacted_into_few_parts(tmp_path, monkeypatch):
    monkeypatch.setattr("miro.data.annotate.COMPACT_EVERY", 3)
    out = tmp_path / "ann.parquet"
    crash = Interrupt(at=35, parts_dir=tmp_path / "ann.parquet.parts")
    with pytest.raises(KeyboardInterrupt):
        annotate(Gray(40), [crash], out, batch_size=5, progress=False)
    assert len(list((tmp_path / "ann.parquet.parts").glob("part-*.parquet"))) == 3  # 7 batches: 3 joined, 3 joined + 1
    assert read_annotation(out)["sample_id"].tolist() == list(range(35))


def test_other_fingerprint_is_refused(tmp_path):
    out = tmp_path / "ann.parquet"
    annotate(Gray(), [brightness("1")], out, progress=False)
    with pytest.raises(MiroError, match='scorer "bright" has fingerprint .* must not mix'):
        annotate(Gray(), [brightness("2")], out, progress=False)


def test_shards_split_by_id_and_merge(tmp_path):
    paths = [tmp_path / f"shard{i}.parquet" for i in range(3)]
    for i, path in enumerate(paths):
        report = annotate(Gray(), [brightness()], path, shard_index=i, shard_count=3, progress=False)
        assert pd.read_parquet(path)["sample_id"].tolist() == [s for s in range(20) if s % 3 == i]
        assert report.samples == len(range(i, 20, 3))
    merged = merge_annotations(paths, tmp_path / "all.parquet")
    single = annotate(Gray(), [brightness()], tmp_path / "single.parquet", progress=False)
    pd.testing.assert_frame_equal(pd.read_parquet(merged), pd.read_parquet(single.path))
    with pytest.raises(MiroError, match="shard 0 of 3, not 1 of 3"):
        annotate(Gray(), [brightness()], paths[0], shard_index=1, shard_count=3, progress=False)
    with pytest.raises(MiroError, match="shard_index = 3"):
        annotate(Gray(), [brightness()], paths[0], shard_index=3, shard_count=3, progress=False)


def test_retry_failed_rescoring(tmp_path):
    out = tmp_path / "ann.parquet"

    def broken(images, prompts):
        raise OSError("GPU fell off")

    with pytest.raises(MiroError, match=r"6 of 6 samples \(100.0%\) have no usable score.*the scores are kept"):
        annotate(Gray(6), [FakeScorer("bright", broken)], out, progress=False)
    assert (pd.read_parquet(out)["bright__status"] == "failed").all()
    fixed = brightness()
    with pytest.raises(MiroError, match="6 of 6 samples"):  # a rerun that rescored nothing still refuses the shard
        annotate(Gray(6), [fixed], out, progress=False)
    assert fixed.seen == []  # failed pairs count as done unless asked
    annotate(Gray(6), [fixed], out, progress=False, retry_failed=True)
    table = pd.read_parquet(out)
    assert len(fixed.seen) == 6 and (table["bright__status"] == "ok").all()


def test_scorers_by_registry_name(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.SCORERS, "length", f"{__name__}:length")
    annotate(Gray(4), ["length"], tmp_path / "a.parquet", progress=False)
    assert pd.read_parquet(tmp_path / "a.parquet")["length"].notna().all()
    with pytest.raises(MiroError, match='unknown scorer "lenght" \\(did you mean "length"\\?\\)'):
        annotate(Gray(4), ["lenght"], tmp_path / "b.parquet", progress=False)
    with pytest.raises(MiroError, match="listed twice"):
        annotate(Gray(4), [length(), length()], tmp_path / "c.parquet", progress=False)


def test_summarize_stats_and_correlation(tmp_path):
    double = FakeScorer("double", lambda x, p: 2 * x.mean(dim=(1, 2, 3)))
    inverse = FakeScorer("inverse", lambda x, p: -x.mean(dim=(1, 2, 3)))
    annotate(Gray(), [brightness(), double, inverse], tmp_path / "a.parquet", progress=False)
    summary = summarize(tmp_path / "a.parquet")
    stats, corr = summary["stats"], summary["corr"]
    assert stats.loc["bright", "mean"] == pytest.approx(0.5) and stats.loc["double", "max"] == pytest.approx(2.0)
    assert stats.loc["bright", "min"] == pytest.approx(0.0) and stats.loc["bright", "nan"] == 0
    assert corr.loc["bright", "double"] == pytest.approx(1.0) and corr.loc["bright", "inverse"] == pytest.approx(-1.0)


def test_import_scores_from_shard_json(tmp_path):
    with wds.TarWriter(str(tmp_path / "d-000.tar")) as sink:
        sink.write({"__key__": "000001", "png": png(10), "txt": "a", "json": json.dumps({"clip_score": 0.31}).encode()})
        sink.write({"__key__": "000002", "png": png(20), "txt": "b", "json": json.dumps({"clip_score": None}).encode()})
        sink.write({"__key__": "000003", "png": png(30), "txt": "c", "json": json.dumps({"clip_score": "NaN"}).encode()})
    out = import_scores(WebDatasetSource(tmp_path), ["clip_score"], tmp_path / "ann.parquet")
    table = read_annotation(out).set_index("sample_id")
    assert table.loc[1, "clip_score"] == pytest.approx(0.31)
    assert table.loc[2, "clip_score__status"] == "failed" and table.loc[3, "clip_score__status"] == "nan"
    assert table.attrs["scorers"]["clip_score"]["fingerprint"] == ScorerInfo("clip_score", "sample-json").fingerprint()


def test_shapes_world_integration(tmp_path):
    shapes = pytest.importorskip("miro.data.shapes")
    from miro.rewards.registry import scorer_names

    real = [n for n in ("shapes_alignment", "shapes_quality", "shapes_size") if n in scorer_names()]
    dataset = shapes.ShapesDataset(shapes.ShapesWorldConfig(), 48, 0)
    names = [brightness(), length(), *real]
    report = annotate(dataset, names, tmp_path / "shapes.parquet", batch_size=16, progress=False)
    table = pd.read_parquet(tmp_path / "shapes.parquet")
    assert report.samples == 48 and table["sample_id"].tolist() == list(range(48))
    assert table["caption"].tolist() == [dataset[i]["caption"] for i in range(48)]
    assert table["bright"].tolist() == pytest.approx([float((dataset[i]["image"] + 1).mean() / 2) for i in range(48)], abs=1e-6)
    for name in ["bright", "length", *real]:
        assert (table[f"{name}__status"] == "ok").all() and np.isfinite(table[name]).all()


def test_a_corrupt_image_in_a_shard_is_counted_named_and_fails_the_stage_past_the_threshold(tmp_path, capsys):
    from miro.__main__ import main

    (tmp_path / "shards").mkdir()
    for shard in range(2):
        with wds.TarWriter(str(tmp_path / "shards" / f"data-{shard:03d}.tar")) as sink:
            for i in range(10):
                sid = shard * 10 + i
                image = io.BytesIO()
                Image.new("RGB", (32, 32), (sid * 10,) * 3).save(image, format="PNG")  # the shapes world's size
                sink.write({"__key__": f"{sid:06d}", "png": image.getvalue() if sid != 13 else b"\x89PNG cut short", "txt": f"caption {sid}"})
    argv = ["annotate", "--source", "webdataset", "--path", str(tmp_path / "shards"), "--scorer", "shapes_quality", "--workers", "1"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "strict")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    assert "1 of 20 samples without a usable score: sample 13: shapes_quality: unreadable image" in err[-2]
    assert err[-1].startswith("error: annotation shard 0/1") and "1 of 20 samples (5.0%) have no usable score, more than the allowed 1.0%" in err[-1]
    assert len(read_annotation(tmp_path / "strict" / "shard-00000-of-00001.parquet")) == 20  # the scores are kept
    main([*argv, "--out", str(tmp_path / "lenient"), "--max-failed", "0.1"])
    assert "1 of 20 samples without a usable score" in capsys.readouterr().err
