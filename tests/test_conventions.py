import torch

from miro.conventions import cfg_rate_to_scale, guided_velocity, interpolate, scale_to_cfg_rate, velocity_target
from miro.sample import integrate, time_grid


def test_guidance_scale_one_is_the_positive_branch():
    v_pos, v_neg = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.allclose(guided_velocity(v_pos, v_neg, 1.0), v_pos)
    assert torch.allclose(guided_velocity(v_pos, v_neg, 0.0), v_neg)


def test_miro_cfg_rate_form_equals_common_form_with_g_equal_w_plus_one():
    v_pos, v_neg = torch.randn(4, 3), torch.randn(4, 3)
    for w in (0.0, 1.5, 7.0):
        miro_form = (1 + w) * v_pos - w * v_neg
        assert torch.allclose(guided_velocity(v_pos, v_neg, cfg_rate_to_scale(w)), miro_form, atol=1e-6)
        assert scale_to_cfg_rate(cfg_rate_to_scale(w)) == w


def test_velocity_target_is_the_time_derivative_of_the_interpolant():
    x, eps = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    t, h = torch.tensor([0.3, 0.7]), 1e-3
    numeric = (interpolate(x, eps, t + h) - interpolate(x, eps, t - h)) / (2 * h)
    assert torch.allclose(numeric, velocity_target(x, eps), atol=1e-3)
    assert torch.equal(interpolate(x, eps, torch.ones(2)), eps)  # t = 1 is pure noise
    assert torch.equal(interpolate(x, eps, torch.zeros(2)), x)


def test_constant_velocity_field_is_integrated_exactly():
    c = torch.tensor([[0.5, -2.0, 3.0]])
    x1 = torch.randn(1, 3)
    for solver in ("euler", "heun"):
        x0 = integrate(lambda x, t: c.expand_as(x), x1, steps=7, solver=solver)
        assert torch.allclose(x0, x1 - c, atol=1e-6)


def test_exact_field_of_a_point_mass_reaches_the_point():
    """For data = x*, v(x_t, t) = (x_t - x*) / t; the straight paths make Euler exact at any step count."""
    target = torch.tensor([[1.0, -1.0, 0.25]])
    noise = torch.randn(5, 3)
    x0 = integrate(lambda x, t: (x - target) / t[:, None], noise, steps=3, solver="euler", shift=3.0)
    assert torch.allclose(x0, target.expand(5, 3), atol=1e-5)


def test_time_grid_runs_from_noise_to_data():
    grid = time_grid(10, shift=3.0)
    assert grid[0] == 1 and grid[-1] == 0 and bool((grid[1:] < grid[:-1]).all())
