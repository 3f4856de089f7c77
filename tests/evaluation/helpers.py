"""Helpers shared by the evaluation tests: a tiny shapes-world run config, its training data, quick options."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from unittest import mock

import torch

from harness.evaluation.generate import GenerationOptions
from harness.evaluation.run import EvaluationOptions
from miro.config import ModelConfig, OptimConfig, RewardConfig, RunConfig, SampleConfig
from miro.data.shapes import ShapesDataset, ShapesWorldConfig
from miro.rewards.base import Scorer, ScorerInfo
from miro.seeding import generator_for

TRAINED = ("shapes_quality", "shapes_size")


class RewardedShapes:
    """Shapes-world items with two seeded random reward values: training needs a reward vector, and these
    tests check the evaluation machinery, not what the model learns."""

    def __init__(self, n: int = 32) -> None:
        self.data = ShapesDataset(ShapesWorldConfig(), n, seed=0)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, object]:
        return {**self.data[i], "rewards": torch.rand(len(TRAINED), generator=generator_for("toy-rewards", i))}


def tiny_shapes_config() -> RunConfig:
    model = ModelConfig(image_size=32, patch_size=8, width=32, depth=1, heads=2, cond_heads=2, text_registers=2, cond_blocks=1)
    return RunConfig(name="tiny-shapes", rewards=RewardConfig(names=TRAINED, scheme="tokens"), model=model,
                     optim=OptimConfig(steps=4, batch_size=8, warmup_steps=2, lr=3e-3),
                     sample=SampleConfig(steps=2, guidance_scale=2.0), checkpoint_every=4, log_every=2)


def quick_options(**changes: object) -> EvaluationOptions:
    """A small evaluation: 2 samples of the first 6 shapes prompts, 2 ODE steps, targets all 1 vs all 0."""
    sample = SampleConfig(steps=2, guidance_scale=2.0, positive_targets=dict.fromkeys(TRAINED, 1.0),
                          negative_targets=dict.fromkeys(TRAINED, 0.0))
    base = EvaluationOptions(limit=6, generation=GenerationOptions(sample, samples_per_prompt=2, batch_size=8),
                             reference_size=64)
    return EvaluationOptions(**{**base.__dict__, **changes})  # type: ignore[arg-type]


class CountingScorer(Scorer):
    """Mean brightness, counting the images it scores (to check that finished scores are not redone)."""

    def __init__(self, name: str = "brightness", version: str = "1") -> None:
        self.info = ScorerInfo(name, version, score_range=(0.0, 1.0))
        self.calls = 0

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        self.calls += len(images)
        return images.mean(dim=(1, 2, 3))


def random_inception_weights(path: Path) -> Path:
    """torch-fidelity's FID Inception with random weights, saved in its real file format (no download)."""
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    with mock.patch.object(fe, "load_state_dict_from_url", return_value={}), \
            mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None):
        torch.manual_seed(0)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(net.state_dict(), path)
    return path
