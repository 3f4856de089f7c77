"""What a run config must satisfy beyond its own fields, checked before any work (and by `--dry-run`).

The typed configs check each field on construction; what needs the registry of scorers, the shapes world
or the process layout lives here, so `miro train`, `miro train --dry-run` and a sweep's plan refuse the same configs.
"""
from __future__ import annotations

import os

from miro.config import RunConfig
from miro.errors import MiroError, unknown_name_error


def check_run_config(cfg: RunConfig, world: int | None = None) -> None:
    """Refuse rewards no scorer provides, a shapes world it cannot build, a batch that does not split over
    processes x accumulation, and wandb logging without the wandb package."""
    from miro.data.build import SHAPES_SCORERS, shapes_world
    from miro.rewards.registry import scorer_names
    from miro.run_log import check_wandb

    check_wandb(cfg)

    if cfg.data.source == "shapes":
        shapes_world(cfg.data)
    available = SHAPES_SCORERS if cfg.data.source == "shapes" else tuple(scorer_names())
    for name in cfg.rewards.names:
        if name not in available:
            raise unknown_name_error(f"reward in rewards.names (data.source = {cfg.data.source})", name, available)
    world = world or int(os.environ.get("WORLD_SIZE", "1"))
    opt = cfg.optim
    if opt.batch_size % (world * opt.grad_accum):
        raise MiroError(f"optim.batch_size = {opt.batch_size} is not divisible by world size {world} x optim.grad_accum "
                        f"{opt.grad_accum}; use a multiple of {world * opt.grad_accum}")
