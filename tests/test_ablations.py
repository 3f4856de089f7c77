from dataclasses import replace

import pytest

from ablations.arms import Arm, Sweep, config_diff, validate_sweep
from ablations.sweeps import SWEEPS, sweep
from miro.errors import MiroError
from miro.presets import PAPER_REWARDS
from miro.sample import guidance_branches


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_every_sweep_is_valid(name):
    s = sweep(name)
    assert s.arms and s.seeds
    assert all(step <= s.arms[0].config.optim.steps for step in s.eval_steps)


def test_paper_sweep_has_the_16_arms_with_one_reward_dropout():
    s = sweep("paper")
    assert len(s.arms) == 16
    assert {a.config.rewards.dropout_p for a in s.arms} == {0.0}
    assert s.arm("miro").config.rewards.names == PAPER_REWARDS
    assert s.arm("without-aesthetic").config.rewards.names == tuple(r for r in PAPER_REWARDS if r != "aesthetic")


def test_an_accidental_difference_is_refused():
    """The released configs' slip: a specialist inheriting another reward dropout than the main arm."""
    s = sweep("default")
    miro = s.arm("miro")
    slipped = Arm("only-quality", replace(miro.config, rewards=replace(miro.config.rewards, names=("shapes_quality",), dropout_p=0.8)),
                  ablates=("rewards.names",), baseline="miro")
    with pytest.raises(MiroError, match=r"undeclared fields \['rewards.dropout_p'\]"):
        validate_sweep(Sweep("slip", (s.arm("baseline"), miro, slipped)))


def test_config_diff_names_each_changed_field():
    s = sweep("default")
    diff = config_diff(s.arm("miro").config, s.arm("only-size").config)
    assert diff == {"rewards.names": (list(s.arm("miro").config.rewards.names), ["shapes_size"])}


def test_unknown_sweep_and_arm_get_did_you_mean():
    with pytest.raises(MiroError, match='did you mean "default"'):
        sweep("defualt")
    with pytest.raises(MiroError, match='did you mean "miro"'):
        sweep("default").arm("mir")


def test_default_guidance_branches_are_all_one_against_all_zero():
    positive, negative = guidance_branches(sweep("smoke").arm("miro").config.sample, ("a", "b"))
    assert positive.targets == {"a": 1.0, "b": 1.0} and negative.targets == {"a": 0.0, "b": 0.0}
    assert negative.null_caption and not positive.null_caption
