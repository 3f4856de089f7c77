"""Reward binning: the released quantile computation, k/(B-1), equal populations, JSON round trip, refusals."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from miro.errors import MiroError
from miro.rewards.binning import BinEdges, BinningOptions, fit_reward


def released_edges(values: list[float], bins: int, seed: int = 42, max_samples: int = 100_000) -> torch.Tensor:
    """The released code's quantile path, written out independently for comparison."""
    picked = random.Random(seed).sample(range(len(values)), min(max_samples, len(values)))
    unique = torch.unique(torch.tensor([values[i] for i in picked], dtype=torch.float32))
    edges = torch.quantile(unique, q=torch.linspace(0, 1, bins + 1))
    edges[0], edges[-1] = 0.0, 1.0
    return torch.unique(edges)


def released_value(score: float, edges: torch.Tensor, bins: int) -> float:
    k = torch.bucketize(torch.tensor(score, dtype=torch.float32), edges).item()
    return float(torch.tensor(max(0, k - 1) / (bins - 1), dtype=torch.float32))


def scores(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).beta(2.0, 5.0, size=n)


def test_quantile_matches_released_code_exactly():
    values = scores(3000).tolist()
    fitted = fit_reward("aes", values)
    expected = released_edges(values, 64)
    assert torch.equal(fitted.edges, expected)
    probes = values[:500] + [0.0, 1.0, *fitted.edges.tolist()]
    got = fitted.to_unit(probes)
    assert got.tolist() == [released_value(v, expected, 64) for v in probes]


def test_values_are_exactly_k_over_b_minus_1():
    fitted = fit_reward("r", scores(5000), BinningOptions(bins=64))
    mids = ((fitted.edges[1:] + fitted.edges[:-1]) / 2).double()
    values = fitted.to_unit(mids)
    assert values.tolist() == (torch.arange(64, dtype=torch.float64) / 63).float().tolist()
    assert values[0] == 0.0 and values[-1] == 1.0
    assert fitted.to_index(mids).tolist() == list(range(64))


@pytest.mark.parametrize("n", [64 * 100 + 1, 5000, 12_345])
def test_quantile_bins_hold_equal_populations(n):
    # continuous = no ties in float32 (edges are quantiles of the *unique* values, as released)
    rng = np.random.default_rng(n)
    values = torch.from_numpy(rng.permutation(np.unique(rng.random(2 * n).astype(np.float32)))[:n])
    counts = torch.bincount(fit_reward("r", values).to_index(values), minlength=64)
    assert len(counts) == 64
    assert counts.max() - counts.min() <= 1
    assert (counts - n / 64).abs().max() <= 1


def test_subsample_is_seeded():
    values = scores(3000).tolist()
    a = fit_reward("r", values, BinningOptions(max_samples=500, seed=7))
    b = fit_reward("r", values, BinningOptions(max_samples=500, seed=7))
    c = fit_reward("r", values, BinningOptions(max_samples=500, seed=8))
    assert torch.equal(a.edges, b.edges) and not torch.equal(a.edges, c.edges)
    assert torch.equal(a.edges, released_edges(values, 64, seed=7, max_samples=500))
    assert a.num_scores == 500


def test_round_trip_save_load(tmp_path):
    edges = BinEdges.fit({"a": scores(2000, 1), "b": scores(2000, 2)}, BinningOptions(strategy="refined_quantile"))
    path = edges.save(tmp_path / "reward_bins.json")
    loaded = BinEdges.load(path)
    assert loaded.options == edges.options and loaded.names == ["a", "b"]
    probe = torch.from_numpy(scores(300, 3))
    for name in ("a", "b"):
        assert torch.equal(loaded.get(name).edges, edges.get(name).edges)
        assert torch.equal(loaded.to_unit(name, probe), edges.to_unit(name, probe))
    assert not list(tmp_path.glob("*.tmp"))


def test_refined_quantile_subdivides_the_last_bins():
    values = torch.from_numpy(np.random.default_rng(0).random(20_000))
    plain = fit_reward("r", values)
    refined = fit_reward("r", values, BinningOptions(strategy="refined_quantile", refine_last=8, refine_factor=2))
    assert refined.bins == 64 - 8 + 8 * 2
    assert torch.equal(refined.edges[: 64 - 8 + 1], plain.edges[: 64 - 8 + 1])
    counts = torch.bincount(refined.to_index(values), minlength=refined.bins).double()
    assert counts[:56].mean().item() == pytest.approx(2 * counts[56:].mean().item(), rel=0.01)
    assert refined.to_unit([1.0]).item() == 1.0


def test_uniform_and_few_values_fallback():
    uniform = fit_reward("r", [0.2, 0.3, 0.6], BinningOptions(strategy="uniform", bins=4))
    assert uniform.edges.tolist() == pytest.approx([0.0, 0.3, 0.4, 0.5, 1.0])
    assert uniform.note == ""
    discrete = fit_reward("align", [0.0, 0.5, 1.0] * 50)
    assert "uniform fallback" in discrete.note and discrete.bins == 64
    assert discrete.to_unit([0.0, 0.5, 1.0]).tolist() == pytest.approx([0.0, 31 / 63, 1.0])


def test_scores_outside_unit_interval_stay_ordered_and_in_range():
    raw = scores(4000) * 5 + 3  # like a raw aesthetic score in [3, 8]
    fitted = fit_reward("aes_raw", raw)
    assert bool((fitted.edges[1:] > fitted.edges[:-1]).all())
    assert fitted.edges[0] == 0.0 and fitted.edges[-1] == pytest.approx(raw.max())
    assert fitted.to_unit([-1.0, 100.0]).tolist() == [0.0, 1.0]
    negative = fit_reward("neg", scores(4000) - 2)
    assert negative.edges[0] == pytest.approx(negative.edges.min()) and negative.edges[-1] == 1.0
    # above the last edge the released formula would give B/(B-1) > 1; here the index is clamped
    assert fit_reward("p", scores(2000)).to_unit([1.5]).item() == 1.0


def test_refusals():
    edges = BinEdges.fit({"aesthetic": scores(500)})
    with pytest.raises(MiroError, match='reward "aesthetc" has no bin edges \\(did you mean "aesthetic"\\?\\).*BinEdges.fit'):
        edges.to_unit("aesthetc", [0.5])
    with pytest.raises(MiroError, match='reward "aesthetic": 1 NaN/inf scores \\(first at position 1\\)'):
        edges.to_unit("aesthetic", [0.1, float("nan")])
    with pytest.raises(MiroError, match="NaN/inf"):
        fit_reward("r", [0.1, float("nan"), 0.3])
    with pytest.raises(MiroError, match="single value"):
        fit_reward("const", [0.5] * 10)
    with pytest.raises(MiroError, match="no scores"):
        fit_reward("empty", [])
    with pytest.raises(MiroError, match='did you mean "quantile"'):
        BinningOptions(strategy="quantil")


def test_load_refuses_bad_files(tmp_path):
    with pytest.raises(MiroError, match="does not exist"):
        BinEdges.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(MiroError, match="not valid JSON"):
        BinEdges.load(tmp_path / "bad.json")
    path = BinEdges.fit({"a": scores(500)}).save(tmp_path / "ok.json")
    payload = json.loads(path.read_text())
    payload["rewards"]["a"]["edges"][3] = payload["rewards"]["a"]["edges"][2]
    path.write_text(json.dumps(payload))
    with pytest.raises(MiroError, match='reward "a" needs >= 3 strictly increasing edges'):
        BinEdges.load(path)
