"""A run names its shapes world (`data.world`): the setting reaches the render, the rewards that annotate it,
the data folder's name and the evaluation's prompts and judge, so a study can ablate how dirty its data is."""
from __future__ import annotations

from dataclasses import replace

import pandas as pd

from harness.evaluation.run import world_of
from harness.prompts import load_prompts
from miro.config import DataConfig, RunConfig, with_overrides
from miro.data.annotate import read_annotation
from miro.data.build import SHAPES_SCORERS, WORLD_TABLE, data_key, prepare_shapes, shapes_world
from miro.data.shapes import ShapesWorldConfig


def test_a_world_setting_reaches_the_render_and_the_rewards_that_annotate_it(tmp_path) -> None:
    default = DataConfig(num_samples=64, seed=1)
    clean = replace(default, world={"noise_prob": 0.0, "blur_prob": 0.0})
    assert data_key(clean) != data_key(default)  # each world prepares its own folder
    folder = prepare_shapes(clean, tmp_path, progress=False)
    table = pd.read_parquet(folder / WORLD_TABLE)
    assert (table["noise_std"] == 0).all() and (table["blur_sigma"] == 0).all()
    assert (table["contrast_blend"] > 0).any()  # what the setting leaves alone keeps the default
    records = read_annotation(folder / "annotations.parquet").attrs["scorers"]
    world = repr(shapes_world(clean))
    assert world != repr(ShapesWorldConfig())
    assert all(records[name]["details"]["world"] == world for name in SHAPES_SCORERS)


def test_the_evaluation_reads_the_world_the_checkpoint_was_trained_on() -> None:
    config = with_overrides(RunConfig(), ['data.world.colors=["red", "blue"]', "data.resolution=64"])
    world = world_of(config)
    assert world is not None and world.colors == ("red", "blue") and world.resolution == 64
    prompts = load_prompts("shapes-test", world=world)
    named = {word for prompt in prompts for word in prompt.text.split()}
    assert {"red", "blue"} <= named and not named & {"green", "yellow"}
