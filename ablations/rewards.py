"""The reward arms every reward study is made of: baseline, MIRO, specialists and leave-one-out."""
from __future__ import annotations

from dataclasses import replace

from harness.study import Arm
from miro.config import RunConfig


def reward_arms(miro: RunConfig, leave_one_out: bool = True) -> list[Arm]:
    """No-reward baseline, MIRO on all rewards, one specialist per reward, and (by default) each leave-one-out."""
    names = miro.rewards.names
    arms = [
        Arm("baseline", replace(miro, name="baseline", rewards=replace(miro.rewards, scheme="none"))),
        Arm("miro", miro, ablates=("rewards.scheme",), baseline="baseline"),
    ]
    if len(names) > 1:
        for reward in names:
            short = reward.removeprefix("shapes_")
            arms.append(Arm(f"only-{short}", replace(miro, name=f"only-{short}", rewards=replace(miro.rewards, names=(reward,))),
                            ablates=("rewards.names",), baseline="miro"))
        for reward in names if leave_one_out else ():
            short = reward.removeprefix("shapes_")
            rest = tuple(n for n in names if n != reward)
            arms.append(Arm(f"without-{short}", replace(miro, name=f"without-{short}", rewards=replace(miro.rewards, names=rest)),
                            ablates=("rewards.names",), baseline="miro"))
    return arms
