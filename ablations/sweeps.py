"""The named sweeps. Each arm is `replace(...)` of a preset and declares the fields it ablates."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ablations.arms import Arm, Sweep, validate_sweep
from miro.config import RunConfig
from miro.errors import unknown_name_error
from miro.presets import paper as paper_preset
from miro.presets import shapes
from miro.presets import smoke as smoke_preset


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


def default() -> Sweep:
    """The embedded shapes world on a CPU: baseline, MIRO and one specialist per reward x 2 seeds.

    Leave-one-out arms are left to the `paper` sweep: the claims the default report must test (MIRO vs
    baseline, convergence, controllability, specialists, GenEval per task) do not need them, and they
    were 6 of its 16 training units. The first checkpoint comes early (step 100) so a rewarded arm's
    crossing of the baseline's final value is observed rather than censored.
    """
    base = shapes()
    miro = replace(base, name="miro", optim=replace(base.optim, steps=500, warmup_steps=50), checkpoint_every=50)
    return Sweep("default", tuple(reward_arms(miro, leave_one_out=False)), seeds=(0, 1), eval_steps=(100, 250, 500),
                 tune_arm="miro", description="Shapes world: does conditioning on rewards help, and what does each reward buy?")


def schemes() -> Sweep:
    """Conditioning schemes (tokens / adaln / prompt / none) and reward-dropout strategies on the shapes world."""
    base = default().arm("miro").config
    arms = [Arm("tokens", replace(base, name="tokens"))]
    for scheme in ("adaln", "prompt", "none"):
        arms.append(Arm(scheme, replace(base, name=scheme, rewards=replace(base.rewards, scheme=scheme)),
                        ablates=("rewards.scheme",), baseline="tokens"))
    for strategy, p in (("binomial", 0.5), ("uniform", 0.0), ("none", 0.0)):
        arms.append(Arm(f"dropout-{strategy}", replace(base, name=f"dropout-{strategy}", rewards=replace(base.rewards, dropout_strategy=strategy, dropout_p=p)),
                        ablates=("rewards.dropout_strategy", "rewards.dropout_p"), baseline="tokens"))
    return Sweep("schemes", tuple(arms), seeds=(0, 1), eval_steps=default().eval_steps,
                 description="Which way of feeding rewards to the network works, and how should rewards be dropped?")


def paper() -> Sweep:
    """The paper's 16 arms at real scale with the released settings (one reward dropout for all arms)."""
    return Sweep("paper", tuple(reward_arms(replace(paper_preset(), name="miro"))), seeds=(0,),
                 eval_steps=tuple(range(25_000, 500_001, 25_000)),
                 description="Baseline, MIRO, 7 single-reward specialists and 7 leave-one-out arms (arXiv 2510.25897).")


def smoke() -> Sweep:
    """Two tiny arms for tests: the baseline and MIRO."""
    miro = replace(smoke_preset(), name="miro")
    return Sweep("smoke", tuple(reward_arms(miro)[:2]), seeds=(0,), eval_steps=(10, 20), tune_arm="miro",
                 description="The smallest sweep that exercises every unit.")


SWEEPS: dict[str, Callable[[], Sweep]] = {"default": default, "schemes": schemes, "paper": paper, "smoke": smoke}


def sweep(name: str) -> Sweep:
    if name not in SWEEPS:
        raise unknown_name_error("sweep", name, SWEEPS)
    result = SWEEPS[name]()
    validate_sweep(result)
    return result
