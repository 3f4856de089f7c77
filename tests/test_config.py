import pytest

from miro.config import ModelConfig, OptimConfig, RewardConfig, RunConfig, SampleConfig, from_dict, to_dict, with_overrides
from miro.errors import MiroError
from miro.presets import PRESETS, preset

UNREAD_PATHS = {"data.path": "unread", "text.path": "unread", "latents.vae_path": "unread"}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_plain_data(name):
    cfg = preset(name, UNREAD_PATHS)  # the paper preset's user paths; never opened here
    assert from_dict(RunConfig, to_dict(cfg)) == cfg


def test_misspelled_key_gets_did_you_mean():
    with pytest.raises(MiroError, match=r'unknown config key "optim.stpes" \(did you mean "steps"\?\)'):
        with_overrides(preset("smoke"), ["optim.stpes=10"])


def test_misspelled_section_gets_did_you_mean():
    with pytest.raises(MiroError, match=r'"optimm" is not a config section \(did you mean "optim"\?\)'):
        with_overrides(preset("smoke"), ["optimm.steps=10"])


@pytest.mark.parametrize("build, message", [
    (lambda: RewardConfig(names=("a",), scheme="tokenz"), r"rewards.scheme = 'tokenz' is not allowed \(did you mean \"tokens\"\?\)"),
    (lambda: RewardConfig(names=("a",), scheme="tokens", dropout_p=1.5), r"rewards.dropout_p = 1.5 is out of range"),
    (lambda: RewardConfig(names=(), scheme="tokens"), r"needs at least one reward"),
    (lambda: RewardConfig(names=("a", "a"), scheme="tokens"), r"lists a reward twice"),
    (lambda: ModelConfig(image_size=30, patch_size=4), r"model.patch_size = 4 must divide model.image_size = 30"),
    (lambda: OptimConfig(optimizer="sgd"), r"optim.optimizer = 'sgd' is not allowed"),
    (lambda: OptimConfig(batch_size=0), r"optim.batch_size = 0 is out of range; allowed: a finite number > 0"),
    (lambda: SampleConfig(positive_targets={"a": 2.0}), r"positive_targets\[a\] = 2.0 is out of range"),
])
def test_bad_values_raise_one_line_errors_naming_the_field(build, message):
    with pytest.raises(MiroError, match=message) as info:
        build()
    assert "\n" not in str(info.value)


def test_targets_must_name_training_rewards():
    cfg = preset("smoke")
    with pytest.raises(MiroError, match=r'unknown reward target "shapes_qualty" \(did you mean "shapes_quality"\?\)'):
        with_overrides(cfg, ['sample.positive_targets={"shapes_qualty": 1.0}'])


def test_self_conditioning_needs_a_backbone_with_latents():
    with pytest.raises(MiroError, match='needs model.backbone = "rin"'):
        with_overrides(preset("smoke"), ["objective.self_conditioning=0.9"])


def test_wrong_type_is_refused():
    with pytest.raises(MiroError, match="optim.steps = 'many' must be of type int"):
        with_overrides(preset("smoke"), ["optim.steps=many"])
