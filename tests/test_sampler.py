import pytest
import torch

from core_fixtures import REWARDS, randomize, tiny_config
from miro.errors import MiroError
from miro.nets.flow_model import build_model
from miro.sample import Branch, sample
from miro.text import ShapesTextEncoder


@pytest.fixture(scope="module")
def model_and_encoder():
    cfg = tiny_config("tokens")
    encoder = ShapesTextEncoder(cfg.text.dim, cfg.text.max_tokens)
    model = build_model(cfg.model, cfg.rewards, cfg.objective, encoder.dim)
    randomize(model)
    return model, encoder


def run(model, encoder, captions, seeds, **kw):
    kw.setdefault("positive", Branch(dict.fromkeys(REWARDS, 1.0)))
    kw.setdefault("negative", Branch(dict.fromkeys(REWARDS, 0.0), null_caption=True))
    kw.setdefault("guidance_scale", 3.0)
    return sample(model, encoder, captions, seeds, (3, 16, 16), steps=4, **kw)


def test_an_image_does_not_depend_on_batch_size(model_and_encoder):
    captions, seeds = ["a red circle", "a blue square", "two circles", "a square"], [11, 12, 13, 14]
    whole = run(*model_and_encoder, captions, seeds)
    pieces = torch.cat([run(*model_and_encoder, captions[:1], seeds[:1]), run(*model_and_encoder, captions[1:], seeds[1:])])
    assert torch.allclose(whole, pieces, atol=1e-5)
    assert not torch.allclose(whole[0], whole[1])


def test_scale_one_equals_the_positive_branch_alone(model_and_encoder):
    with_neg = run(*model_and_encoder, ["a red circle"], [3], guidance_scale=1.0)
    alone = run(*model_and_encoder, ["a red circle"], [3], negative=None)
    assert torch.allclose(with_neg, alone, atol=1e-6)


def test_reward_targets_steer_the_samples(model_and_encoder):
    high = run(*model_and_encoder, ["a red circle"], [5], positive=Branch({"alpha": 1.0, "beta": 1.0}))
    low = run(*model_and_encoder, ["a red circle"], [5], positive=Branch({"alpha": 0.0, "beta": 1.0}))
    assert (high - low).abs().max() > 1e-3


def test_heun_runs_and_differs_from_euler(model_and_encoder):
    euler = run(*model_and_encoder, ["a red circle"], [5])
    heun = run(*model_and_encoder, ["a red circle"], [5], solver="heun")
    assert torch.isfinite(heun).all() and not torch.allclose(euler, heun)


def test_unknown_reward_target_is_refused_with_did_you_mean(model_and_encoder):
    with pytest.raises(MiroError, match=r'"alpah" was not a training reward of this checkpoint \(did you mean "alpha"\?\)'):
        run(*model_and_encoder, ["x"], [0], positive=Branch({"alpah": 1.0}))


def test_target_outside_unit_interval_is_refused(model_and_encoder):
    with pytest.raises(MiroError, match=r'"beta" = 1.5 is outside \[0, 1\]'):
        run(*model_and_encoder, ["x"], [0], negative=Branch({"beta": 1.5}))


def test_baseline_checkpoint_takes_no_targets():
    cfg = tiny_config("none")
    encoder = ShapesTextEncoder(cfg.text.dim, cfg.text.max_tokens)
    model = build_model(cfg.model, cfg.rewards, cfg.objective, encoder.dim)
    with pytest.raises(MiroError, match="its rewards: none"):
        sample(model, encoder, ["x"], [0], (3, 16, 16), positive=Branch({"alpha": 1.0}), negative=None,
               guidance_scale=1.0, steps=2)


def test_a_trained_checkpoint_loads_for_sampling(tmp_path):
    from core_fixtures import ToyDataset
    from miro.inference import load_generator
    from miro.train import train

    train(tiny_config("tokens", steps=4), ToyDataset(), tmp_path, progress=False)
    gen = load_generator(tmp_path)
    assert gen.step == 4 and gen.data_shape == (3, 16, 16)
    images = sample(gen.model, gen.text_encoder, ["a red circle"], [0], gen.data_shape,
                    positive=Branch({"alpha": 1.0}), negative=None, guidance_scale=1.0, steps=2)
    assert images.shape == (1, 3, 16, 16)
    with pytest.raises(MiroError, match="holds no checkpoint"):
        load_generator(tmp_path / "nothing")


@pytest.mark.parametrize("shift", [1.0, 0.5, 3.0, 6.0])
def test_the_released_time_grid_is_ours_with_the_imported_shift(shift):
    """Released LinearScheduler (start 1, end 0): gamma_i = s u / (1 + (s - 1) u) at u = i / n when s > 1, else u;
    our t runs 1 -> 0 and the network of an imported checkpoint reads gamma = 1 - t."""
    from miro.released import time_shift
    from miro.sample import time_grid

    u = torch.arange(51, dtype=torch.float64) / 50
    gamma = shift * u / (1 + (shift - 1) * u) if shift > 1 else u
    ours = time_grid(50, time_shift({"scheduler": {"start": 1, "end": 0, "shift": shift, "clip_min": 1e-9}}))
    assert torch.allclose(1 - ours.double(), gamma, atol=1e-6)
    assert time_shift({}) == 1.0  # no scheduler block: the pipeline's default, unshifted


def test_an_explicit_initial_noise_is_where_sampling_starts(model_and_encoder):
    captions, seeds = ["a red circle", "a blue square"], [11, 12]
    noise = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    given = run(*model_and_encoder, captions, seeds, noise=noise)
    assert torch.equal(given, run(*model_and_encoder, captions, [98, 99], noise=noise))  # the seeds no longer decide it
    assert not torch.allclose(given, run(*model_and_encoder, captions, seeds))
    with pytest.raises(MiroError, match=r"needs \(2, 3, 16, 16\)"):
        run(*model_and_encoder, captions, seeds, noise=noise[:1])
