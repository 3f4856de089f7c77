"""Registry entries of the real reward models and metrics (factories in miro.rewards.real.*)."""
from __future__ import annotations

from miro.rewards.registry import register

register("hpsv2", "miro.rewards.real.hps:build")
register("image_reward", "miro.rewards.real.image_reward:build")
register("pickscore", "miro.rewards.real.pickscore:build")
register("sciscore", "miro.rewards.real.sciscore:build")
register("aesthetic", "miro.rewards.real.aesthetic:build")
register("clip_score", "miro.rewards.real.clip_score:build")
register("jina_clip", "miro.rewards.real.jina_clip:build")
register("vqascore", "miro.rewards.real.vqascore:build")
