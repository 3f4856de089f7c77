"""The paper's claims, one verdict each, read off the report's statistics tables (nothing is recomputed here).

Each claim is supported, not supported, or not testable in this sweep, and lists its numbers with their 95%
prompt-bootstrap intervals. Differences count only when their Holm-adjusted p-value (reports.comparisons)
is below ALPHA. The arms' roles come from what they were trained on, never from their names (reports.roles).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from reports import formatting
from reports.comparisons import ALPHA
from reports.results import SweepSpec
from reports.roles import Roles, roles

SUPPORTED, NOT_SUPPORTED, NOT_TESTABLE = "supported", "not supported", "not testable in this sweep"
CLAIM_COLUMNS = ["key", "statement", "status", "reason", "evidence"]


@dataclass(frozen=True)
class Claim:
    """One paper claim: its verdict, why, and one line of numbers per reward, metric, arm or task."""

    key: str
    statement: str
    status: str
    reason: str
    evidence: tuple[str, ...] = ()


def outcome(row: pd.Series, direction: int) -> str:
    """'better', 'worse' or 'changed' (no better direction) when Holm-significant, else 'no significant difference'."""
    if row["p_holm"] >= ALPHA:
        return "no significant difference"
    if direction == 0:
        return "changed"
    return "better" if (row["difference"] > 0) == (direction > 0) else "worse"


def difference(row: pd.Series, direction: int) -> str:
    """'geneval −0.120 [−0.180, −0.060] (worse, Holm p < 0.001)'."""
    return (f"{row['metric']} {formatting.signed(row['difference'])} {formatting.interval(row['low'], row['high'])} "
            f"({outcome(row, direction)}, Holm {formatting.p_value(row['p_holm'])})")


def pair_rows(comparisons: pd.DataFrame, arm: str | None, against: str | None, per_task: bool = False) -> pd.DataFrame:
    """One arm pair's comparisons: its metrics family, or (per_task) its GenEval per-task family."""
    if comparisons.empty or arm is None or against is None:
        return comparisons.iloc[0:0]
    rows = comparisons[(comparisons["arm"] == arm) & (comparisons["against"] == against)]
    tagged = rows["metric"] != rows["base_metric"]
    return rows[tagged & (rows["base_metric"] == "geneval")] if per_task else rows[~tagged]


def head(rows: pd.DataFrame) -> str:
    first = rows.iloc[0]
    return f"step {first['step']}, {first['n_seeds']} seed(s), {first['n_prompts']} prompts, Holm family of {first['family_size']}"


def rewards_claim(comparisons: pd.DataFrame, spec: SweepSpec, who: Roles) -> Claim:
    """(a) MIRO beats the baseline on every reward and every held-out metric; held-out metrics are the evidence."""
    statement = "MIRO beats the no-reward baseline on every reward and on every held-out metric"
    rows = pair_rows(comparisons, who.miro, who.baseline)
    directed = rows[rows["base_metric"].map(spec.direction) != 0]
    held, trained = directed[~directed["trained"].astype(bool)], directed[directed["trained"].astype(bool)]
    if held.empty:
        return Claim("rewards", statement, NOT_TESTABLE, "no held-out metric compares MIRO with the baseline "
                     "(its rewards alone are not independent evidence)")
    better = {name: sum(outcome(r, spec.direction(r["base_metric"])) == "better" for _, r in part.iterrows())
              for name, part in (("held", held), ("trained", trained))}
    status = SUPPORTED if better["held"] == len(held) and better["trained"] == len(trained) else NOT_SUPPORTED
    reason = (f"{who.miro} vs {who.baseline} ({head(rows)}): better on {better['held']} of {len(held)} held-out metrics; "
              f"on its rewards, which it was trained on (not independent evidence), better on {better['trained']} of {len(trained)}")
    evidence = tuple([f"held out: {difference(r, spec.direction(r['base_metric']))}" for _, r in held.iterrows()]
                     + [f"trained reward: {difference(r, spec.direction(r['base_metric']))}" for _, r in trained.iterrows()]
                     + [f"no better direction: {difference(r, 0)}" for _, r in rows.iterrows() if spec.direction(r["base_metric"]) == 0])
    return Claim("rewards", statement, status, reason, evidence)


def speedup_text(row: pd.Series) -> str:
    """'2.5× [1.8, 3.1]'; censored: '≥ 5.0× (lower 95% bound 3.0; reached at the first checkpoint)'; 'not reached';
    or not measurable when the baseline itself starts at its final value."""
    if row["baseline_flat"]:
        return ("not measurable: the baseline was already at its final value at the first checkpoint, so reaching "
                "it measures no convergence")
    if pd.isna(row["speedup"]):
        return f"not reached (in {formatting.number(100 * row['reached_fraction'])}% of resamples)"
    if row["at_first_step"]:
        low = "" if pd.isna(row["low"]) else f"lower 95% bound {formatting.number(row['low'])}; "
        return f"≥ {row['speedup']:.1f}× (censored, {low}already reached at the first checkpoint: a lower bound only)"
    return formatting.speedup(row["speedup"], row["low"], row["high"], False)


def convergence_claim(speedups: pd.DataFrame, who: Roles) -> Claim:
    """(b) MIRO reaches the baseline's final reward in fewer steps: the speed-up's interval lies above 1."""
    statement = "MIRO converges faster than the baseline on each reward (speed-up above 1)"
    rows = speedups[(speedups["arm"] == who.miro) & speedups["metric"].isin(who.rewards)] if who.miro else speedups.iloc[0:0]
    if rows.empty:
        return Claim("convergence", statement, NOT_TESTABLE, "no speed-up of MIRO over the baseline (needs both arms at "
                     "two or more common steps)")
    evidence = tuple(f"{r['metric']}: {speedup_text(r)}" for _, r in rows.iterrows())
    flat = rows[rows["baseline_flat"].astype(bool)]
    measured = rows[~rows["baseline_flat"].astype(bool)]
    if measured.empty:
        return Claim("convergence", statement, NOT_TESTABLE, "on every reward the baseline was already at its final value "
                     "at the first checkpoint; evaluate a checkpoint where it is still below", evidence)
    fast = [bool(not pd.isna(r["low"]) and r["low"] > 1) for _, r in measured.iterrows()]
    censored = int(measured["at_first_step"].astype(bool).sum())
    reason = (f"the lower 95% bound is above 1 for {sum(fast)} of {len(measured)} measurable rewards (target: the baseline's "
              f"value at step {rows['target_step'].iloc[0]})")
    if len(flat):
        reason += f"; not measurable on {', '.join(flat['metric'])} (the baseline started at its final value)"
    if censored:
        reason += (f"; {censored} speed-up(s) are censored (MIRO was already there at the first checkpoint), so they are "
                   "lower bounds: evaluate an earlier step to measure them")
    return Claim("convergence", statement, SUPPORTED if all(fast) else NOT_SUPPORTED, reason, evidence)


def controllability_claim(slopes: pd.DataFrame, who: Roles) -> Claim:
    """(c) Raising a reward's target raises the measured reward: the slope's interval lies above 0."""
    statement = "Each reward is controllable: raising its target at inference raises the measured reward (slope above 0)"
    rows = slopes[(slopes["arm"] == who.miro) & (slopes["metric"] == slopes["reward"])] if who.miro else slopes.iloc[0:0]
    if rows.empty:
        return Claim("controllability", statement, NOT_TESTABLE, "no reward-target sweep of MIRO in this sweep")
    rising = [bool(r["low"] > 0) for _, r in rows.iterrows()]
    unswept = [r for r in who.rewards if r not in set(rows["reward"])]
    reason = f"{who.miro}: the 95% prompt-bootstrap interval of the slope is above 0 for {sum(rising)} of {len(rows)} swept rewards"
    if unswept:
        reason += f"; not swept: {', '.join(unswept)}"
    evidence = tuple(f"{r['reward']}: slope {formatting.signed(r['slope'])} {formatting.interval(r['low'], r['high'])} "
                     f"per unit of target ({r['n_targets']} targets, {r['n_prompts']} prompts, step {r['step']})"
                     for _, r in rows.iterrows())
    return Claim("controllability", statement, SUPPORTED if all(rising) else NOT_SUPPORTED, reason, evidence)


def specialist_line(comparisons: pd.DataFrame, spec: SweepSpec, arm: str, who: Roles) -> tuple[bool, str]:
    """(fits the claim, its numbers): own reward against the baseline and MIRO, significant losses elsewhere."""
    (reward,) = spec.arm(arm).training_rewards
    parts, gains, losses = [], False, False
    for against in (who.baseline, who.miro):
        rows = pair_rows(comparisons, arm, against)
        if against is None or rows.empty:
            continue
        own = rows[rows["base_metric"] == reward]
        for _, r in own.iterrows():
            parts.append(f"own reward vs {against}: {difference(r, spec.direction(reward))}")
            gains |= against == who.baseline and outcome(r, spec.direction(reward)) == "better"
        worse = [difference(r, spec.direction(r["base_metric"])) for _, r in rows[rows["base_metric"] != reward].iterrows()
                 if outcome(r, spec.direction(r["base_metric"])) == "worse"]
        parts.append(f"worse than {against} on: " + ("; ".join(worse) if worse else "nothing"))
        losses |= against == who.miro and bool(worse)
    return gains and losses, f"{arm} ({reward}): " + ". ".join(parts)


def specialists_claim(comparisons: pd.DataFrame, spec: SweepSpec, who: Roles) -> Claim:
    """(d) A single-reward arm gains on its reward and loses elsewhere, where MIRO keeps the balance."""
    statement = ("A single-reward specialist gains on its own reward and loses elsewhere: it beats the baseline on its "
                 "reward and is worse than MIRO on some other metric")
    tested = [a for a in who.specialists if not pair_rows(comparisons, a, who.miro).empty
              and not pair_rows(comparisons, a, who.baseline).empty]
    if not tested:
        return Claim("specialists", statement, NOT_TESTABLE, "no single-reward arm compared with both MIRO and the baseline")
    lines = [specialist_line(comparisons, spec, a, who) for a in tested]
    fits = [a for a, (ok, _) in zip(tested, lines) if ok]
    reason = f"{len(fits)} of {len(tested)} specialists fit ({', '.join(fits) or 'none'}); Holm within each arm pair's metrics"
    return Claim("specialists", statement, SUPPORTED if len(fits) == len(tested) else NOT_SUPPORTED, reason,
                 tuple(text for _, text in lines))


def geneval_tasks_claim(comparisons: pd.DataFrame, who: Roles) -> Claim:
    """(e) MIRO's GenEval gain shows in its tasks: some task better, none worse (the per-task Holm family)."""
    statement = "MIRO improves GenEval's tasks over the baseline: at least one task better and none worse"
    rows = pair_rows(comparisons, who.miro, who.baseline, per_task=True)
    if rows.empty:
        return Claim("geneval_tasks", statement, NOT_TESTABLE, "no GenEval per-task comparison of MIRO with the baseline")
    results = [outcome(r, 1) for _, r in rows.iterrows()]
    better, worse = results.count("better"), results.count("worse")
    reason = f"{who.miro} vs {who.baseline} ({head(rows)}): {better} of {len(rows)} tasks better, {worse} worse"
    evidence = tuple(difference(r, 1) for _, r in rows.iterrows())
    return Claim("geneval_tasks", statement, SUPPORTED if better and not worse else NOT_SUPPORTED, reason, evidence)


def claims(comparisons: pd.DataFrame, speedups: pd.DataFrame, slopes: pd.DataFrame, spec: SweepSpec) -> list[Claim]:
    """The five claims in the paper's order: rewards, convergence, controllability, specialists, GenEval tasks."""
    who = roles(spec)
    return [rewards_claim(comparisons, spec, who), convergence_claim(speedups, who), controllability_claim(slopes, who),
            specialists_claim(comparisons, spec, who), geneval_tasks_claim(comparisons, who)]


def claims_frame(judged: list[Claim]) -> pd.DataFrame:
    """The claims as an exported table (evidence lines joined by ' | ')."""
    return pd.DataFrame([{"key": c.key, "statement": c.statement, "status": c.status, "reason": c.reason,
                          "evidence": " | ".join(c.evidence)} for c in judged], columns=CLAIM_COLUMNS)
