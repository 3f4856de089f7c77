from dataclasses import replace

import pytest

from ablations.sweeps import SWEEPS
from harness.study import Arm, Study, config_diff, validate_study
from harness.study_file import load_study as sweep
from miro.errors import MiroError
from miro.presets import PAPER_REWARDS
from miro.sample import guidance_branches


@pytest.mark.parametrize("name", sorted(set(SWEEPS) - {"paper", "released"}))  # these read a data folder and weights file
def test_every_sweep_is_valid(name):
    s = sweep(name)
    assert s.arms and s.seeds
    assert all(step <= s.arms[0].config.optim.steps for step in s.eval_steps)


def test_paper_study_reads_the_data_folder_and_weights_file_and_has_the_16_arms(tmp_path):
    for name in ("t5", "vae", "shards"):
        (tmp_path / name).mkdir()
    weights = tmp_path / "weights.toml"
    weights.write_text(f'[t5]\npath = "{tmp_path / "t5"}"\n[vae]\npath = "{tmp_path / "vae"}"\n')
    derived = sweep("paper", {"data": str(tmp_path / "shards"), "weights": str(weights)})
    assert (derived.tuning.prompts, derived.evaluation[1].prompts) == ("parti:validation", "parti:test")  # a seeded split
    (tmp_path / "validation.tsv").write_text("Prompt\tCategory\tChallenge\tNote\na red cube\tThings\tBasic\t\n")
    weights.write_text(weights.read_text() + f'[geneval]\nthreshold = 0.4\ncolors_model = "ViT-B-32"\n'
                                              f'[benchmarks]\nvalidation = "{tmp_path / "validation.tsv"}"\n')
    s = sweep("paper", {"data": str(tmp_path / "shards"), "weights": str(weights)})
    assert len(s.arms) == 16
    assert {a.config.rewards.dropout_p for a in s.arms} == {0.0}
    assert s.arm("miro").config.rewards.names == PAPER_REWARDS
    assert s.arm("without-aesthetic").config.rewards.names == tuple(r for r in PAPER_REWARDS if r != "aesthetic")
    assert s.arm("miro").config.text.path == str(tmp_path / "t5") and s.data.annotate == PAPER_REWARDS
    geneval = s.evaluation[0]
    assert (geneval.geneval_threshold, geneval.geneval_counting_threshold, geneval.geneval_colors_model) == (0.4, 0.9, "ViT-B-32")
    assert s.tuning.prompts == str(tmp_path / "validation.tsv") and s.tuning.scorers == ("pickscore", "clip_score")
    assert s.evaluation[1].prompts == "parti"  # tuned on its own prompts: all of PartiPrompts is reported


def test_paper_study_without_a_data_folder_says_which_option_to_pass():
    with pytest.raises(MiroError, match="pass --data"):
        sweep("paper")


def test_an_accidental_difference_is_refused():
    """The released configs' slip: a specialist inheriting another reward dropout than the main arm."""
    s = sweep("default")
    miro = s.arm("miro")
    slipped = Arm("only-quality", replace(miro.config, rewards=replace(miro.config.rewards, names=("shapes_quality",), dropout_p=0.8)),
                  ablates=("rewards.names",), baseline="miro")
    with pytest.raises(MiroError, match=r"undeclared fields \['rewards.dropout_p'\]"):
        validate_study(Study("slip", (s.arm("baseline"), miro, slipped), eval_steps=(150,)))


def test_config_diff_names_each_changed_field():
    s = sweep("default")
    diff = config_diff(s.arm("miro").config, s.arm("only-size").config)
    assert diff == {"rewards.names": (list(s.arm("miro").config.rewards.names), ["shapes_size"])}


def test_unknown_sweep_and_arm_get_did_you_mean():
    with pytest.raises(MiroError, match='did you mean "default"'):  # a built-in study name
        sweep("defualt")
    with pytest.raises(MiroError, match='did you mean "miro"'):
        sweep("default").arm("mir")


def test_default_guidance_branches_are_all_one_against_all_zero():
    positive, negative = guidance_branches(sweep("smoke").arm("miro").config.sample, ("a", "b"))
    assert positive.targets == {"a": 1.0, "b": 1.0} and negative.targets == {"a": 0.0, "b": 0.0}
    assert negative.null_caption and not positive.null_caption
