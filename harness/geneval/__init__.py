"""GenEval: the reference evaluator's exact rules, its folder layout, and detectors that feed them.

Submodules load heavy packages (transformers, open_clip, mmdet) only when imported: `rules`,
`metadata`, `layout` and `evaluate` need just numpy and PIL.
"""
