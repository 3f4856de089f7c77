"""The report's figures, each a function from tables to an embedded SVG (matplotlib, Agg, no pyplot state).

- style: the colour-blind-safe palette, per-arm styles, axis labels with direction, SVG embedding
- radar: normalised metrics per arm (each specialist's trade-off)
- curves: metrics against training step, speed-ups annotated
- control: reward-target controllability, best-of-N curves, a Pareto front of two objectives
- heatmap: GenEval per task and arm
"""
