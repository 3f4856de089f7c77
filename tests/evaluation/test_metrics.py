"""Roles, diversity, FID/KID, summaries and the evaluation modes, on small known inputs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from harness.evaluation.diversity import mean_pairwise_distance, per_prompt_diversity, vendi_score
from harness.evaluation.features import PixelFeatures, build_features, extract
from harness.evaluation.fidelity import fid_kid, folder_reference, shapes_reference, shapes_reference_seed
from harness.evaluation.generate import GenerationOptions
from harness.evaluation.modes import TargetSweep, best_of_n_curves, sweep_table
from harness.evaluation.roles import HELD_OUT, TRAINED, held_out, metric_roles
from harness.evaluation.summary import mean_over_prompts
from harness.geneval.evaluate import summarize
from miro.config import SampleConfig
from miro.data.shapes import ShapesWorldConfig
from miro.errors import MiroError

from .helpers import random_inception_weights


def test_roles_never_count_a_conditioned_reward_as_held_out():
    assert metric_roles(["quality", "clip", "geneval_correct"], ["quality"]) == {
        "quality": TRAINED, "clip": HELD_OUT, "geneval_correct": HELD_OUT}
    arms = {"miro": ["quality", "size"], "specialist": ["clip"], "baseline": []}
    assert held_out(["quality", "size", "clip", "pick"], arms) == ["pick"]


def test_vendi_and_pairwise_distance_on_known_sets():
    assert vendi_score(torch.ones(4, 3)) == pytest.approx(1.0)
    assert vendi_score(torch.eye(4)) == pytest.approx(4.0)
    assert mean_pairwise_distance(torch.tensor([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)
    per = per_prompt_diversity(torch.cat([torch.ones(2, 3), torch.eye(3)[:2]]), [7, 7, 9, 9])
    assert per[7]["vendi"] == pytest.approx(1.0) and per[9]["vendi"] == pytest.approx(2.0)
    with pytest.raises(MiroError, match="at least 2 samples per prompt"):
        per_prompt_diversity(torch.eye(2), [0, 1])


def test_fid_and_kid_tell_a_shifted_set_from_the_same_one():
    g = torch.Generator().manual_seed(0)
    real, same, shifted = (torch.randn(300, 6, generator=g, dtype=torch.float64) for _ in range(3))
    near, far = fid_kid(same, real), fid_kid(shifted + 1.0, real)
    assert near.fid < 0.5 < 5.0 < far.fid and abs(near.kid_mean) < 0.05 < far.kid_mean
    assert fid_kid(shifted, real) == fid_kid(shifted, real)  # seeded KID subsets


def test_the_shapes_reference_is_held_out_and_repeatable():
    world = ShapesWorldConfig()
    assert shapes_reference_seed(0) not in (0, 1) and shapes_reference_seed(0) == shapes_reference_seed(0)
    first = torch.cat(list(shapes_reference(world, 5, 123, batch_size=2)))
    assert first.shape == (5, 3, 32, 32) and torch.equal(first, torch.cat(list(shapes_reference(world, 5, 123))))
    features = extract(PixelFeatures(), [first])
    assert features.shape == (5, 192) and features.dtype == torch.float64


def test_inception_features_load_a_local_weights_file_and_feed_a_folder_reference(tmp_path):
    from PIL import Image

    weights = random_inception_weights(tmp_path / "inception.pth")
    features = build_features(f"inception={weights}")
    for i in range(3):
        Image.fromarray(np.full((40, 30, 3), 60 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    batches = list(folder_reference(tmp_path, 32, count=3, batch_size=2))
    assert [b.shape for b in batches] == [(2, 3, 32, 32), (1, 3, 32, 32)]
    assert extract(features, batches).shape == (3, 2048)
    with pytest.raises(MiroError, match="do not exist; download weights-inception"):
        build_features(f"inception={tmp_path / 'missing.pth'}")
    with pytest.raises(MiroError, match='--features "clip"'):
        build_features("clip")


def test_clip_features_load_local_open_clip_weights(tmp_path):
    import open_clip

    from miro.tiny.clip import TINY_HPS, TINY_HPS_CONFIG, write_config

    open_clip.add_model_config(write_config(tmp_path, TINY_HPS, TINY_HPS_CONFIG))
    torch.manual_seed(0)
    torch.save(open_clip.create_model(TINY_HPS, None).state_dict(), tmp_path / "clip.pt")
    features = build_features(f"clip={TINY_HPS}:{tmp_path / 'clip.pt'}")
    embeddings = extract(features, [torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))])
    assert embeddings.shape == (3, TINY_HPS_CONFIG["embed_dim"]) and features.fingerprint.startswith(f"clip:{TINY_HPS}:")
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(3, dtype=torch.float64))
    assert vendi_score(embeddings) > 1.0


def geneval_like_rows():
    """3 prompts in 2 tags, 2 images each, and the same as GenEval result rows."""
    table = pd.DataFrame({"prompt_index": [0, 0, 1, 1, 2, 2], "sample": [0, 1] * 3,
                          "group": ["single_object"] * 4 + ["counting"] * 2,
                          "geneval_correct": [1.0, 0.0, 1.0, 1.0, 0.0, 0.0]})
    rows = [{"tag": g, "correct": bool(c), "metadata": str(p)}
            for p, g, c in zip(table["prompt_index"], table["group"], table["geneval_correct"])]
    return table, rows


def test_stratified_prompt_mean_is_genevals_overall_score():
    table, rows = geneval_like_rows()
    entry = mean_over_prompts(table, "geneval_correct", strata=True)
    assert entry["value"] == pytest.approx(summarize(rows).overall) == pytest.approx(0.375)
    assert entry["low"] <= entry["value"] <= entry["high"] and entry["n_prompts"] == 3
    plain = mean_over_prompts(table.assign(geneval_correct=[1.0, None, 0.5, 0.5, 0.0, 0.0]), "geneval_correct")
    assert plain["value"] == pytest.approx(0.5) and plain["missing"] == 1


def test_best_of_n_curves_select_by_one_score_and_report_others():
    table = pd.DataFrame({"prompt_index": [0] * 4 + [1] * 4, "sample": list(range(4)) * 2,
                          "reward": [0.1, 0.4, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8],
                          "held": [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]})
    result = best_of_n_curves(table, "reward", ["reward", "held"], {"reward": TRAINED, "held": HELD_OUT})
    reward, held = result["curves"]["reward"], result["curves"]["held"]
    assert reward["ns"] == [1, 2, 3, 4] and reward["mean"][0] == pytest.approx(table["reward"].mean())
    assert reward["mean"][-1] == pytest.approx((0.4 + 0.8) / 2) and held["mean"][-1] == pytest.approx(0.5)
    assert np.all(np.diff(reward["mean"]) > 0) and result["select_by_role"] == TRAINED
    with pytest.raises(MiroError, match="unknown best-of-N selection scorer"):
        best_of_n_curves(table, "rewrd", ["reward"], {})


def test_a_target_sweep_moves_one_reward_and_keeps_the_others():
    base = GenerationOptions(SampleConfig(positive_targets={"a": 1.0, "b": 0.5}))
    sweep = TargetSweep("a", (0.0, 1.0))
    points = sweep.points(base)
    assert [dict(o.sample.positive_targets) for _, o in points] == [{"a": 0.0, "b": 0.5}, {"a": 1.0, "b": 0.5}]
    summaries = [{"metrics": {"q": {"value": v, "low": v - 0.1, "high": v + 0.1, "role": HELD_OUT}}} for v in (0.2, 0.7)]
    table = sweep_table(sweep, summaries)
    assert table["metrics"]["q"]["value"] == [0.2, 0.7] and table["targets"] == [0.0, 1.0]
    with pytest.raises(MiroError, match="sweep values"):
        TargetSweep("a", (0.0, 2.0))


def test_saved_images_and_reference_folders_are_read_in_the_unit_range(tmp_path):
    """Features, diversity and FID see what generation saw: images in [0, 1], whichever way they are read back."""
    from PIL import Image

    from harness.evaluation.run import file_batches

    for i, level in enumerate((0, 128, 255)):
        Image.new("RGB", (8, 8), (level, level, level)).save(tmp_path / f"{i}.png")
    files = sorted(str(p) for p in tmp_path.glob("*.png"))
    for batch in (next(file_batches(files)), next(folder_reference(tmp_path, size=8, count=3))):
        assert batch.dtype == torch.float32 and torch.allclose(batch[:, 0, 0, 0], torch.tensor([0.0, 128 / 255, 1.0]))
