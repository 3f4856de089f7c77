"""The authors' released checkpoints as a study: evaluate-only arms, compared with our suites and statistics.

    python -m miro import-released released/miro --out runs/released/miro --text-encoder $T5 --vae $VAE
    python -m miro import-released released/ablations --out runs/released --text-encoder $T5 --vae $VAE
    nox -s sweep -- released --data runs/released --weights weights.toml [--executor slurm ...]

`--data` is a folder of imported run folders, one per checkpoint; the one named `miro` (the main release) is the
reference arm and every other (a specialist or a leave-one-out arm) is compared against it. Nothing is trained:
each arm is evaluated at the checkpoint its import wrote, on the paper's GenEval and PartiPrompts suites.
"""
from __future__ import annotations

import json
from pathlib import Path

from ablations.paper import paper_suites
from harness.study import Arm, Study, config_diff
from miro.checkpoint import checkpoint_dirs, checkpoint_step
from miro.config import RunConfig, from_dict
from miro.errors import MiroError

MAIN = "miro"  # the main release's run folder: the reference arm


def imported_arm(run: Path, main: RunConfig | None) -> Arm:
    """An imported run folder as an evaluate-only arm; a variant declares how it differs from the main release."""
    config = from_dict(RunConfig, json.loads((run / "config.json").read_text()))
    if main is None:
        return Arm(run.name, config, evaluate_only=str(run))
    return Arm(run.name, config, ablates=tuple(config_diff(main, config)), baseline=MAIN, evaluate_only=str(run))


def released(data: str = "", weights: str = "") -> Study:
    """`data`: the folder `miro import-released` wrote (one run folder per checkpoint); `weights`: the weights file."""
    from miro.weights_file import load, merge_scorer_options

    folder = Path(data).expanduser()
    runs = sorted(p for p in folder.iterdir() if (p / "config.json").is_file() and checkpoint_dirs(p)) if folder.is_dir() else []
    if not any(run.name == MAIN for run in runs):
        raise MiroError(f"--data {data or '(none)'} holds no imported run folder {MAIN}/; import the released checkpoints "
                        "first with python -m miro import-released (see the README) and pass their folder")
    steps = {checkpoint_step(checkpoint_dirs(run)[-1]) for run in runs}
    if len(steps) != 1:
        raise MiroError(f"the imported runs in {folder} were recorded at different steps {sorted(steps)}; import them with one --step")
    local = load(weights or None)
    main = imported_arm(folder / MAIN, None)
    arms = (main, *(imported_arm(run, main.config) for run in runs if run.name != MAIN))
    return Study("released", arms, seeds=(0,), eval_steps=tuple(steps),
                 description="The authors' released MIRO checkpoints, evaluated here with our suites and statistics.",
                 evaluation=paper_suites(local, merge_scorer_options(local, {})), weights=local.source)
