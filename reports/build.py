"""Build a sweep's report from its stored results: load, compute statistics, draw, render, export tables.

Nothing here trains or scores: a rebuild reads results/ and takes seconds, so it can run after every
finished unit of a sweep and on a partial sweep (the report then says what is missing).

A finished report is never replaced by less: a rebuild that lacks results (results/ moved away, units not
finished) and covers fewer estimates than the report already there is written beside it, as
<name>.partial.html with its tables, and the report there is kept.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from miro.files import write_text_atomic
from reports import modes, reference
from reports.claims import NOT_TESTABLE, claims, claims_frame
from reports.comparisons import ALPHA, PromptMeans, statistics
from reports.convergence import curves, speedups
from reports.figures.control import best_of_n, controllability, pareto
from reports.figures.curves import training_curves
from reports.figures.heatmap import geneval_heatmap, task_table
from reports.figures.radar import radar
from reports.render import csv_uri, png_uri, render, table_view
from reports.results import load
from reports.roles import arms_sentence
from reports.summary import arms_overview, confusion_view, correlation_matrix, data_and_compute, manifest_items
from reports.tables import diversity_summary, export, main_table, main_table_frame, speedup_matrix
from reports.verdicts import verdicts

FAILURE_EXAMPLES = 12
REPORT = "report.html"  # in the sweep folder, unless build_report is given another path


def tables_folder(html: Path) -> Path:
    """Where a report's tables go: <report stem>_tables/ beside it."""
    return html.with_name(f"{html.stem}_tables")


@dataclass(frozen=True)
class Built:
    """Where the report and its tables went, and how long the rebuild took."""

    html: Path
    tables: Path
    seconds: float
    missing: list[str]
    kept: Path | None = None  # the fuller report left in place, when this one went beside it


def covered(html: Path) -> int | None:
    """How many estimates the report at `html` covers (rows of its exported estimates table); None when there is no
    report there, and a report whose table does not read counts as covering everything (it is never judged less)."""
    if not html.is_file():
        return None
    try:
        return len(pd.read_csv(html.with_name(f"{html.stem}_tables") / "estimates.csv"))
    except (OSError, ValueError, pd.errors.ParserError):
        return 2**62


def failure_examples(failures: list[dict], limit: int = FAILURE_EXAMPLES) -> list[dict]:
    """A few failures, taken in turn from each arm so that every arm is shown, images embedded."""
    by_arm: dict[str, list[dict]] = {}
    for row in failures:
        by_arm.setdefault(row["arm"], []).append(row)
    chosen: list[dict] = []
    while len(chosen) < limit and any(by_arm.values()):
        for rows in by_arm.values():
            if rows and len(chosen) < limit:
                chosen.append(rows.pop(0))
    return [{**row, "uri": png_uri(row["image"]) if row["image"] else None} for row in chosen]


def build_report(sweep_dir: str | Path, out: str | Path | None = None) -> Built:
    """Write <out> (default <sweep>/report.html) and its tables in <out stem>_tables/ as CSV and JSON."""
    started = time.perf_counter()
    results = load(sweep_dir)
    spec = results.spec
    html = Path(out) if out is not None else results.root / REPORT
    folder = tables_folder(html)

    means = PromptMeans(results.metrics)
    stats = statistics(results, means)
    curve_table = curves(means, spec, stats.keys)
    speedup_table = speedups(means, spec, stats.keys)
    diversity = diversity_summary(results.diversity)
    published = reference.arm_rows([a.name for a in spec.arms], [k.label for k in stats.keys])
    main = main_table(stats.estimates, stats.comparisons, diversity, spec, published)
    control, selection = modes.controllability(results.controllability), modes.best_of_n(results.best_of_n)
    slopes = modes.control_slopes(results.controllability)
    trials, tasks = modes.pareto_trials(results.pareto), task_table(stats.estimates, spec)

    drawn = [radar(stats.estimates, spec), training_curves(curve_table, speedup_table, spec, reference.speedups()),
             geneval_heatmap(tasks), controllability(control, slopes, spec), best_of_n(selection, spec)]
    if results.pareto is not None:
        drawn.append(pareto(trials, results.pareto["objectives"], results.pareto["arm"], spec.direction))
    judged = verdicts(stats.comparisons, spec)
    own = [v for v in judged if spec.arm(v.arm).baseline == v.against]
    paper_claims = claims(stats.comparisons, speedup_table, slopes, spec)
    correlations, reading = correlation_matrix(results.data_correlations)
    confusion, confusion_reading = confusion_view(results.shape_confusion)
    tables: dict[str, pd.DataFrame] = {
        "main_table": main_table_frame(main), "estimates": stats.estimates, "comparisons": stats.comparisons,
        "diversity": diversity, "speedups": speedup_table, "curves": curve_table, "controllability": control,
        "control_slopes": slopes, "claims": claims_frame(paper_claims),
        "best_of_n": selection, "pareto": trials, "geneval_tasks": tasks.reset_index(), "arms": arms_overview(spec),
        "published": published, "verdicts": pd.DataFrame([{**asdict(v), "text": v.text} for v in judged]),
    }
    if correlations is not None:
        tables["data_correlations"] = correlations
    if confusion is not None:
        tables["shape_confusion"] = confusion
    context = {
        "spec": spec, "root": results.root, "tables_folder": folder, "built": time.strftime("%Y-%m-%d %H:%M"),
        "missing": results.missing, "absent": results.absent, "alpha": ALPHA, "families": sorted(stats.comparisons.groupby("family").size().items()) if len(stats.comparisons) else [],
        "arms": table_view(tables["arms"]), "verdicts": {"own": own, "reference": [v for v in judged if v not in own]},
        "claims": paper_claims, "not_testable": NOT_TESTABLE, "arms_run": arms_sentence(spec),
        "facts": data_and_compute(results),
        "correlations": {"view": table_view(correlations) if correlations is not None else None, "reading": reading},
        "confusion": {"view": table_view(confusion) if confusion is not None else None, "reading": confusion_reading}, "main": main, "figures": {f.key: f for f in drawn if f is not None},
        "speedups": table_view(speedup_matrix(speedup_table)), "comparisons": table_view(stats.comparisons),
        "published": table_view(published), "sources": reference.sources(), "manifest": manifest_items(spec),
        "failures": failure_examples(results.failures), "grids": {a: png_uri(p) for a, p in results.grids.items()},
        "csv_uris": {name: csv_uri(frame) for name, frame in tables.items()},
    }
    kept, before = None, covered(html)
    if results.missing and before is not None and len(stats.estimates) < before:
        kept, html = html, html.with_name(f"{html.stem}.partial{html.suffix}")
        folder = html.with_name(f"{html.stem}_tables")
        context["tables_folder"] = folder
    html.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(html, render(context))
    export(tables, folder)
    return Built(html, folder, time.perf_counter() - started, results.missing, kept)
