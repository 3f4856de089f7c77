"""The self-contained HTML report of a sweep, rebuilt in seconds from its stored results.

- results: the input contract (a sweep directory) and its loading and checks
- comparisons: per-arm estimates, paired comparisons, Holm within each stated family
- convergence: training curves and the paper's speed-up
- modes: controllability, best-of-N and Pareto tables
- tables, verdicts, summary: the main table, the sentences, the opening facts
- reference: the paper's published numbers (reports/data)
- figures: matplotlib figures as embedded SVG
- render, build: the jinja2 template and the whole pipeline; `python -m reports <sweep dir>`
"""
