"""Arms and sweeps as data: each arm is a run config derived from a baseline, naming what it ablates.

An arm declares the config fields it changes (`ablates`, dotted paths such as "rewards.names"); the
harness refuses an arm whose resolved config differs from its baseline anywhere else, so an ablation
can never differ by accident (the released configs differ in reward dropout between arms this way).
"""
from __future__ import annotations

from dataclasses import dataclass

from miro.config import RunConfig, to_dict
from miro.errors import MiroError, unknown_name_error

# fields that identify a run rather than define it: never counted as a difference
IDENTITY_FIELDS = ("name",)


@dataclass(frozen=True)
class Arm:
    name: str
    config: RunConfig
    ablates: tuple[str, ...] = ()
    baseline: str | None = None  # the arm it is compared against; None for a sweep's reference arm


@dataclass(frozen=True)
class Sweep:
    """Arms x seeds, each trained and evaluated at `eval_steps`; `tune_arm` (first seed, last step) also gets
    an Optuna study of its inference knobs on validation prompts."""

    name: str
    arms: tuple[Arm, ...]
    seeds: tuple[int, ...] = (0,)
    eval_steps: tuple[int, ...] = ()
    description: str = ""
    tune_arm: str = ""

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise unknown_name_error("arm", name, [a.name for a in self.arms])


def flatten(data: dict[str, object], prefix: str = "") -> dict[str, object]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    flat: dict[str, object] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def config_diff(baseline: RunConfig, arm: RunConfig) -> dict[str, tuple[object, object]]:
    """Every resolved field that differs: path -> (baseline value, arm value)."""
    a, b = flatten(to_dict(baseline)), flatten(to_dict(arm))
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and k not in IDENTITY_FIELDS}


def undeclared_differences(arm: Arm, baseline: Arm) -> list[str]:
    """Differences from the baseline that the arm did not declare (a declared section covers its fields)."""
    return [path for path in config_diff(baseline.config, arm.config)
            if not any(path == d or path.startswith(d + ".") for d in arm.ablates)]


def validate_sweep(sweep: Sweep) -> None:
    """Refuse duplicate arm names, unknown baselines and undeclared differences, before anything runs."""
    names = [a.name for a in sweep.arms]
    if len(set(names)) != len(names):
        raise MiroError(f"sweep {sweep.name} has duplicate arm names {sorted({n for n in names if names.count(n) > 1})}; rename the arms")
    if sweep.tune_arm:
        sweep.arm(sweep.tune_arm)
    for arm in sweep.arms:
        if arm.baseline is None:
            continue
        extra = undeclared_differences(arm, sweep.arm(arm.baseline))
        if extra:
            raise MiroError(f"arm {arm.name} differs from its baseline {arm.baseline} in undeclared fields {extra}; add them to the arm's `ablates` or make the configs equal")
