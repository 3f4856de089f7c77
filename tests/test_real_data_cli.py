"""The real-data commands' pieces and every bad input of the path from data to a checkpoint: one line each."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import torch

from core_fixtures import refusal
from miro.__main__ import main
from miro.data.annotate import annotate, read_annotation
from miro.data.feature_store import LATENT_STATS, FeatureStore
from miro.data.precompute import PrecomputeOptions, precompute
from miro.data.shapes import ShapesDataset, ShapesWorldConfig
from miro.data.sources import DatasetSource
from miro.data.training_set import FeatureTrainingSet, fit_bins
from miro.errors import MiroError
from miro.rewards.base import Scorer, ScorerInfo
from miro.rewards.binning import BinEdges, BinningOptions, bins_beside
from miro.tiny.data import write_example_data
from miro.tiny.models import save_tiny_t5, save_tiny_vae


def one_line_exit(argv) -> str:
    return refusal(main, argv)


class Brightness(Scorer):
    def __init__(self, name="vqascore"):
        self.info = ScorerInfo(name, "1")

    def score(self, images, prompts):
        return images.mean(dim=(1, 2, 3))


def test_weights_check_lists_every_problem_at_once(tmp_path, capsys):
    (tmp_path / "t5").mkdir()
    (tmp_path / "t5" / "config.json").write_text("{not json")
    (tmp_path / "w.toml").write_text(f"""
[t5]
path = "{tmp_path / 't5'}"
[vae]
path = "{tmp_path / 'missing-vae'}"
[scorers.hpsv2]
checkpoint = "{tmp_path / 'HPS_v2.1_compressed.pt'}"
modle_name = "ViT-H-14"
[benchmarks]
parti = "{tmp_path / 'PartiPrompts.tsv'}"
sha256 = {{parti = "{'0' * 64}"}}
""")
    (tmp_path / "PartiPrompts.tsv").write_text("Prompt\tCategory\tChallenge\tNote\nbond\tAbstract\tBasic\t\n")
    assert refusal(main, ["weights", "check", str(tmp_path / "w.toml")]).startswith(f"error: 5 problem(s) in {tmp_path / 'w.toml'}")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    assert any("key benchmarks.parti:" in line and f"not {'0' * 64}; fetch it again" in line for line in lines)
    assert any("key vae:" in line and "missing-vae does not exist" in line and "huggingface-cli download stabilityai/sdxl-vae" in line for line in lines)
    assert any("scorers.hpsv2.checkpoint" in line and "huggingface-cli download xswu/HPSv2 HPS_v2.1_compressed.pt" in line for line in lines)
    assert any("key t5:" in line and "cannot read its config" in line for line in lines)
    assert any('unknown option "modle_name" (did you mean "model_name"?)' in line for line in lines)


def test_weights_file_refuses_unknown_sections(tmp_path):
    (tmp_path / "w.toml").write_text("[scorer.hpsv2]\ncheckpoint = 'x'\n")
    assert "unknown section [scorer] (did you mean \"scorers\"?)" in one_line_exit(["annotate", "--weights", str(tmp_path / "w.toml"), "--out", str(tmp_path / "a")])


def test_real_scorer_without_weights_says_how_to_pass_them(tmp_path):
    message = one_line_exit(["annotate", "--samples", "4", "--scorer", "hpsv2", "--out", str(tmp_path / "a")])
    assert "no checkpoint given" in message and "--scorer-option hpsv2.KEY=VALUE" in message
    message = one_line_exit(["annotate", "--samples", "4", "--scorer", "hpsv2", "--scorer-option", "hpsv2.checkpiont=x", "--out", str(tmp_path / "a")])
    assert 'scorer hpsv2 has no option "checkpiont" (did you mean "checkpoint"?)' in message
    message = one_line_exit(["annotate", "--samples", "4", "--scorer", "hpsv2", "--scorer-option", "hpsv2.checkpoint=/nowhere.pt", "--out", str(tmp_path / "a")])
    assert "checkpoint=/nowhere.pt does not exist; get it with: huggingface-cli download xswu/HPSv2" in message
    assert "is a file; annotate writes a folder" in one_line_exit(["annotate", "--out", str(tmp_path / "a.parquet")])
    assert "holds no shard files" in one_line_exit(["annotate", "--merge", "--out", str(tmp_path / "empty")])
    assert "or pass --vae DIR / --t5 DIR" in one_line_exit(["precompute", "--out", str(tmp_path / "f")])


def test_shards_assemble_when_all_are_done_and_merge_waits_for_them(tmp_path, capsys):
    out = tmp_path / "ann"
    main(["annotate", "--samples", "12", "--out", str(out), "--shard", "0/2", "--scorer", "shapes_quality"])
    assert "shard 0/2 done" in capsys.readouterr().out
    assert "shards 1/2 are not finished" in one_line_exit(["annotate", "--merge", "--out", str(out)])
    main(["annotate", "--samples", "12", "--out", str(out), "--shard", "1/2", "--scorer", "shapes_quality"])
    assert len(read_annotation(out / "annotations.parquet")) == 12


def test_a_column_annotated_elsewhere_merges_by_sample_key(tmp_path):
    """VQAScore runs in its own environment (t2v_metrics pins torch 2.5.1); its annotation joins by sample_id."""
    out = tmp_path / "ann"
    main(["annotate", "--samples", "10", "--out", str(out), "--scorer", "shapes_quality"])
    world = DatasetSource(ShapesDataset(ShapesWorldConfig(resolution=32), 10, 0))
    annotate(world, [Brightness()], tmp_path / "vqa-env" / "annotations.parquet", progress=False)  # "the other environment"
    main(["annotate", "--merge", "--out", str(out), "--include", str(tmp_path / "vqa-env" / "annotations.parquet")])
    merged = read_annotation(out / "annotations.parquet")
    assert {"shapes_quality", "vqascore"} <= set(merged.attrs["scorers"]) and (merged["vqascore__status"] == "ok").all()
    expected = read_annotation(tmp_path / "vqa-env" / "annotations.parquet").set_index("sample_id")["vqascore"]
    assert merged.set_index("sample_id")["vqascore"].equals(expected)
    # a later assembly (e.g. a new scorer on every shard) keeps the included column
    main(["annotate", "--samples", "10", "--out", str(out), "--scorer", "shapes_size"])
    assert {"shapes_quality", "shapes_size", "vqascore"} <= set(read_annotation(out / "annotations.parquet").attrs["scorers"])


def test_bins_live_under_the_annotation_name_and_refit_when_it_changes(tmp_path):
    world = DatasetSource(ShapesDataset(ShapesWorldConfig(resolution=32), 40, 0))
    path = tmp_path / "first.parquet"
    annotate(world, [Brightness("bright")], path, progress=False, shard_index=0, shard_count=2)
    edges = fit_bins(path, ["bright"], BinningOptions(bins=4))
    assert bins_beside(path) == tmp_path / "first.bins.json" and edges.fingerprint
    again = fit_bins(path, ["bright"], BinningOptions(bins=4))  # unchanged annotation: same edges
    assert again.fingerprint == edges.fingerprint and torch.equal(again.get("bright").edges, edges.get("bright").edges)
    annotate(world, [Brightness("bright")], path, progress=False, shard_index=0, shard_count=2, retry_failed=True)
    assert BinEdges.load(bins_beside(path)).fingerprint == edges.fingerprint
    pq_table = pq.read_table(path)  # a changed annotation (here: rewritten with fewer rows) is refitted
    pq.write_table(pq_table.slice(0, 10).replace_schema_metadata(pq_table.schema.metadata), path)
    refit = fit_bins(path, ["bright"], BinningOptions(bins=4))
    assert refit.fingerprint != edges.fingerprint and refit.get("bright").num_scores == 10


def test_train_cli_inputs(tmp_path):
    listed = ["train", "--preset", "smoke", "--out", str(tmp_path / "r"), "--dry-run",
              "--set", "rewards.names=shapes_quality,shapes_size", "--set", "rewards.scheme=tokens"]
    main(listed)
    assert "must be a list of numbers: write optim.betas=0.9,0.999" in one_line_exit(
        ["train", "--preset", "smoke", "--out", str(tmp_path / "r"), "--set", "optim.betas=a,b"])
    assert "model.image_size = 16, model.channels = 3 but the data gives 3 x 32 x 32" in one_line_exit(
        ["train", "--preset", "smoke", "--out", str(tmp_path / "r"), "--set", "model.image_size=16"])
    save_tiny_vae(tmp_path / "vae")
    vae = ["--set", "latents.space=vae", "--set", f"latents.vae_path={tmp_path / 'vae'}", "--set", "model.channels=4"]
    assert "data gives 4 x 16 x 16 (data.resolution 32 / VAE downsampling 2); set model.image_size=16" in one_line_exit(
        ["train", "--preset", "smoke", "--out", str(tmp_path / "r"), *vae])
    paper = ["train", "--preset", "paper", "--out", str(tmp_path / "p"), "--set", "data.path=x", "--set", "text.path=x",
             "--set", f"latents.vae_path={tmp_path / 'vae'}"]
    assert "days on cpu" in one_line_exit(paper) and "or pass --force" in one_line_exit(paper)


def test_a_failed_start_does_not_lock_the_run_folder(tmp_path):
    run = tmp_path / "run"
    smoke = ["train", "--preset", "smoke", "--out", str(run), "--data-root", str(tmp_path / "data"),
             "--set", "data.num_samples=32", "--set", "optim.steps=2", "--set", "checkpoint_every=2"]
    run.mkdir()
    (run / "config.json").write_text('{"name": "a failed start with another config"}')
    main(smoke)
    assert (run / "checkpoints").is_dir()
    assert "holds a run with a different config" in one_line_exit(smoke[:-2] + ["--set", "optim.steps=3", "--set", "optim.lr=0.01"])


def test_training_reads_precomputed_features_and_never_loads_the_encoders(tmp_path):
    from dataclasses import replace

    from miro.config import DataConfig, LatentConfig, RewardConfig, TextConfig
    from miro.presets import preset
    from miro.train import train

    data = write_example_data(tmp_path / "data", samples=6, fmt="folder")
    save_tiny_vae(tmp_path / "vae")
    save_tiny_t5(tmp_path / "t5")
    options = PrecomputeOptions(vae_path=str(tmp_path / "vae"), text_path=str(tmp_path / "t5"), resolution=32, max_tokens=8)
    for shard in range(2):
        precompute(data, tmp_path / "features", options, shard_index=shard, shard_count=2, progress=False)
    stats = json.loads((tmp_path / "features" / LATENT_STATS).read_text())  # kept while writing, summed over the shards
    assert len(stats["mean"]) == len(stats["std"]) == 4 and stats["count"] == 6 * 16 * 16 and stats["shards"] == 2
    store = FeatureStore(tmp_path / "features")
    means = torch.stack([store.read(row).latent[0].double() for row in range(len(store))])  # (N, C, h, w)
    torch.testing.assert_close(torch.tensor(stats["mean"], dtype=torch.float64), means.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(torch.tensor(stats["std"], dtype=torch.float64), means.transpose(0, 1).reshape(4, -1).std(dim=1, correction=0))
    annotate(data, [Brightness("bright")], tmp_path / "ann.parquet", progress=False)
    base = preset("smoke")
    cfg = replace(base, data=DataConfig(source="folder", path=str(data), annotations=str(tmp_path / "ann.parquet"),
                                        features=str(tmp_path / "features"), resolution=32),
                  rewards=RewardConfig(names=("bright",), scheme="tokens", caption_dropout=0.5, bins=4),
                  text=TextConfig(encoder="t5", path=str(tmp_path / "gone-t5"), max_tokens=8),  # never loaded
                  latents=LatentConfig(space="vae", vae_path=str(tmp_path / "gone-vae")),
                  model=replace(base.model, image_size=16, channels=4, patch_size=4),
                  optim=replace(base.optim, steps=2, batch_size=4), checkpoint_every=2)
    dataset = FeatureTrainingSet(store, tmp_path / "ann.parquet", fit_bins(tmp_path / "ann.parquet", ["bright"], BinningOptions(bins=4)),
                                 ["bright"])
    assert train(cfg, dataset, tmp_path / "run", progress=False).name == "step-0000002"
    wrong = replace(cfg, model=replace(cfg.model, image_size=8, patch_size=4))
    with pytest.raises(MiroError, match=r"precomputed latents are \(4, 16, 16\) but .* set model.channels=4 model.image_size=16"):
        train(wrong, dataset, tmp_path / "run2", progress=False)
    text, mask = store.stored_text().encode([""])  # the null caption, padded to max_tokens
    assert text.shape == (1, 8, 16) and text.dtype == torch.float32 and mask.shape == (1, 8)


def test_a_checkpoint_trained_elsewhere_finds_its_encoders_through_the_weights_file(tmp_path):
    from dataclasses import replace

    from miro.config import LatentConfig, TextConfig
    from miro.presets import preset
    from miro.weights_file import parse

    (tmp_path / "t5").mkdir()
    trained = replace(preset("smoke"), text=TextConfig(encoder="t5", path="/other/cluster/t5"),
                      latents=LatentConfig(space="vae", vae_path=str(tmp_path)))
    moved = parse({"t5": {"path": str(tmp_path / "t5")}, "vae": {"path": "/unused"}}).relocate(trained)
    assert moved.text.path == str(tmp_path / "t5") and moved.latents.vae_path == str(tmp_path)  # an existing path stays


class Counting(Scorer):
    """Scores the mean of its prepared input; counts how often a batch was prepared."""

    preprocessing_key = "halve"
    prepared = 0

    def __init__(self, name):
        self.info = ScorerInfo(name, "1")

    def prepare(self, images):
        Counting.prepared += 1
        return images / 2

    def score(self, images, prompts):
        return self.score_prepared(self.prepare(images), prompts)

    def score_prepared(self, prepared, prompts):
        return prepared.mean(dim=(1, 2, 3))


def test_scorers_with_one_preprocessing_prepare_each_batch_once(tmp_path):
    world = DatasetSource(ShapesDataset(ShapesWorldConfig(resolution=32), 8, 0))
    Counting.prepared = 0
    annotate(world, [Counting("a"), Counting("b"), Brightness("plain")], tmp_path / "ann.parquet", batch_size=4, progress=False)
    table = read_annotation(tmp_path / "ann.parquet")
    assert Counting.prepared == 2  # two batches, prepared once for both scorers
    assert table["a"].equals(table["b"]) and ((table["a"] * 2 - table["plain"]).abs() < 1e-6).all()
