"""Which part of the paper's story each arm plays, read from what it was trained on (never from its name).

The baseline is the sweep's no-reward reference; MIRO the arm conditioned on every reward any arm uses
(preferring one compared with the baseline); a specialist an other arm conditioned on exactly one reward; a
leave-one-out arm one conditioned on all of MIRO's rewards but one. Every other arm (another conditioning
scheme, another dropout, an imported checkpoint) is a variant of its own baseline. The report's subtitle, its
arms table and its claims follow these roles, so a study derived from another says what it actually ran.
"""
from __future__ import annotations

from dataclasses import dataclass

from reports.results import ArmSpec, SweepSpec


@dataclass(frozen=True)
class Roles:
    """Which arms play the paper's parts; None or () where the sweep has no such arm."""

    baseline: str | None
    miro: str | None
    rewards: tuple[str, ...]  # MIRO's rewards, in its order
    specialists: tuple[str, ...]
    leave_one_out: tuple[str, ...] = ()


def roles(spec: SweepSpec) -> Roles:
    """The roles of `spec`'s arms (module docstring)."""
    every = {r for a in spec.arms for r in a.training_rewards}
    full = [a for a in spec.arms if every and set(a.training_rewards) == every]
    miro = next((a for a in full if a.baseline == spec.reference), full[0] if full else None)
    specialists = tuple(a.name for a in spec.arms if len(a.training_rewards) == 1 and a is not miro)
    rewards = miro.training_rewards if miro else ()
    leave_one_out = tuple(a.name for a in spec.arms if len(rewards) > 2 and len(a.training_rewards) == len(rewards) - 1
                          and set(a.training_rewards) < set(rewards))
    return Roles(spec.reference, miro.name if miro else None, rewards, specialists, leave_one_out)


def short(reward: str) -> str:
    return reward.removeprefix("shapes_")


def role_of(arm: ArmSpec, who: Roles) -> str:
    """One arm's part, e.g. "MIRO: all 3 rewards", "specialist: quality", "leave-one-out: without size"."""
    if arm.name == who.baseline:
        return "no-reward baseline"
    if arm.name == who.miro:
        return f"MIRO: all {len(who.rewards)} rewards" if len(who.rewards) > 1 else f"MIRO: {short(who.rewards[0])}"
    if arm.name in who.specialists:
        return f"specialist: {short(arm.training_rewards[0])}"
    if arm.name in who.leave_one_out:
        return f"leave-one-out: without {', '.join(short(r) for r in who.rewards if r not in arm.training_rewards)}"
    return f"variant of {arm.baseline}" if arm.baseline else "reference"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def arms_sentence(spec: SweepSpec) -> str:
    """The arms actually run, by part: "3 arms: the no-reward baseline, MIRO on 3 rewards (alignment, quality, size)
    and 1 single-reward specialist." """
    who = roles(spec)
    parts = ["the no-reward baseline"] if who.baseline else []
    if who.miro:
        parts.append(f"MIRO on {_count(len(who.rewards), 'reward', 'rewards')} ({', '.join(map(short, who.rewards))})")
    if who.specialists:
        parts.append(_count(len(who.specialists), "single-reward specialist", "single-reward specialists"))
    if who.leave_one_out:
        parts.append(_count(len(who.leave_one_out), "leave-one-out arm", "leave-one-out arms"))
    named = {who.baseline, who.miro, *who.specialists, *who.leave_one_out}
    others = [a.name for a in spec.arms if a.name not in named]
    if others:
        parts.append(f"{_count(len(others), 'other arm', 'other arms')} ({', '.join(others)})")
    listed = ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else "".join(parts)
    return f"{_count(len(spec.arms), 'arm', 'arms')}: {listed}."
