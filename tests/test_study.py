"""Studies: loaded from a user's file or by name, overridden with --set, checked as a whole before planning,
and planned into units whose keys hash exactly what each unit uses."""
import pytest

from harness.checks import study_problems, validate
from harness.plan import plan_study
from harness.store import Store
from harness.study_file import load_study
from harness.sweep import main
from harness.tasks import evaluation_options
from miro.errors import MiroError

USER_STUDY = '''
from dataclasses import replace

from ablations.rewards import reward_arms
from ablations.shapes import SHAPES_SUITE
from harness.study import Study
from miro.presets import smoke


def study():
    miro = replace(smoke(), name="miro")
    return Study("mine", tuple(reward_arms(miro)[:2]), eval_steps=(10, 20), evaluation=(SHAPES_SUITE,))
'''


def keys(plan, stage):
    return {u.label: u.unit.key for u in getattr(plan, stage)}


def test_a_user_study_file_is_loaded_and_overridden(tmp_path):
    path = tmp_path / "my_study.py"
    path.write_text(USER_STUDY)
    study = load_study(str(path), overrides=["seeds=[0, 1]", "run.optim.steps=40", "evaluation.shapes.samples_per_prompt=1",
                                             "resources.train.gpus_per_node=2"])
    assert study.name == "mine" and study.seeds == (0, 1)
    assert {a.config.optim.steps for a in study.arms} == {40}
    assert study.evaluation[0].samples_per_prompt == 1 and study.resources == {"train": {"gpus_per_node": 2}}
    assert [a.name for a in study.arms] == ["baseline", "miro"] and study.arm("miro").config.rewards.scheme == "tokens"


@pytest.mark.parametrize("item, message", [
    ("tuning.trails=3", 'unknown study field "trails" \\(did you mean "trials"\\?\\)'),
    ("seeds=zero", "seeds holds a tuple"),
    ("evaluation.samples_per_prompt", "is not of the form"),
])
def test_a_wrong_override_is_refused_with_the_fix(item, message):
    with pytest.raises(MiroError, match=message):
        load_study("smoke", overrides=[item])


def test_changing_tuning_trials_recomputes_no_evaluation(tmp_path):
    store = Store(tmp_path / "store")
    before = plan_study(load_study("smoke"), store)
    after = plan_study(load_study("smoke", overrides=["tuning.trials=3"]), store)
    assert keys(before, "evaluate") == keys(after, "evaluate") and keys(before, "train") == keys(after, "train")
    assert keys(before, "tune") != keys(after, "tune")
    sharded = plan_study(load_study("smoke", overrides=["evaluation.shapes.shards=2"]), store)
    assert keys(sharded, "evaluate") == keys(before, "evaluate")  # sharding the generation changes no result
    assert len(sharded.generate) == 2 * len(sharded.evaluate)
    assert all(u.unit.depends_on[-2:] == tuple(g.unit.key for g in sharded.generate if g.label.endswith(u.label.removeprefix("evaluate ")))
               for u in sharded.evaluate)


def test_geneval_rules_and_tuning_scorers_reach_their_units_and_only_their_keys(tmp_path):
    store = Store(tmp_path / "store")
    before = plan_study(load_study("smoke"), store)
    rules = plan_study(load_study("smoke", overrides=["evaluation.shapes.geneval_threshold=0.5",
                                                      "evaluation.shapes.geneval_colors_model=ViT-B-32"]), store)
    assert keys(rules, "evaluate") != keys(before, "evaluate")
    assert keys(rules, "tune") == keys(before, "tune") and keys(rules, "train") == keys(before, "train")
    options = evaluation_options(rules.evaluate[0].unit.params["suite"], rules.evaluate[0].unit.params["sample"])
    assert options.geneval_rules.threshold == 0.5 and options.geneval_rules.max_objects == 16
    assert options.geneval_colors_model == "ViT-B-32"
    scored = plan_study(load_study("smoke", overrides=["tuning.scorers=('shapes_quality',)"]), store)
    assert keys(scored, "evaluate") == keys(before, "evaluate") and keys(scored, "tune") != keys(before, "tune")
    assert scored.tune[0].unit.params["tuning"]["scorers"] == ["shapes_quality"]


def test_every_problem_of_a_study_is_listed_at_once(tmp_path):
    study = load_study("smoke", overrides=["evaluation.shapes.scorers=('pickscor',)", "evaluation.shapes.geneval_detector=/no/such",
                                           "tuning.prompts=shapes-test", "evaluation.shapes.geneval_threshold=1.5",
                                           "tuning.scorers=('imagereward',)", "resources.trian.gpus_per_node=1", "eval_steps=(15,)"])
    problems = study_problems(study)
    assert len(problems) == 8, problems  # both arms miss the checkpoint
    joined = "\n".join(problems)
    for expected in ('unknown scorer "pickscor" (did you mean "pickscore"?)', "/no/such does not exist", "is a test split",
                     'unknown unit kind "trian" (did you mean "train"?)', "writes no checkpoint at steps [15]",
                     "GenEvalOptions.threshold must be in [0, 1)", 'tuning.scorers: unknown scorer "imagereward"'):
        assert expected in joined
    with pytest.raises(MiroError, match="8 problem"):
        validate(study)


def test_dry_run_refuses_an_invalid_study_and_plans_nothing(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["smoke", "--root", str(tmp_path), "--dry-run", "--set", "evaluation.shapes.prompts=shapes-tset"])
    assert exit_info.value.code == 2 and "nothing was planned" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def test_dry_run_prints_units_per_stage_estimates_and_each_kinds_sbatch_script(tmp_path, capsys):
    main(["smoke", "--root", str(tmp_path), "--dry-run", "--executor", "slurm", "--partition", "gpu",
          "--set", "resources.train.gpus_per_node=4", "--set", "resources.train.tasks_per_node=4",
          "--set", "evaluation.shapes.shards=3"])
    out = capsys.readouterr().out
    assert "train        2 units (2 train)" in out and "generate    12 units (12 generate)" in out
    assert "GPU-hour estimates" in out
    train_script = out[out.index("sbatch script of the train jobs"):out.index("sbatch script of the generate jobs")]
    assert "#SBATCH --gpus-per-node=4" in train_script and "#SBATCH --ntasks-per-node=4" in train_script
    generate_script = out[out.index("sbatch script of the generate jobs"):]
    assert "#SBATCH --array=0-11" in generate_script and "#SBATCH --partition=gpu" in generate_script


def test_an_evaluate_only_arm_is_evaluated_from_its_run_folder_and_never_trained(tmp_path):
    from dataclasses import replace

    from harness.study import Arm

    study = load_study("smoke")
    imported = tmp_path / "released"
    imported.mkdir()
    arm = Arm("released", study.arm("miro").config, baseline="miro", evaluate_only=str(imported))
    plan = plan_study(replace(study, arms=(*study.arms, arm)), Store(tmp_path / "store"))
    assert [u.arm for u in plan.train] == ["baseline", "miro"]
    evaluations = [u for u in plan.evaluate if u.arm == "released"]
    assert [u.unit.params["checkpoint"] for u in evaluations] == [str(imported / "checkpoints" / f"step-{s:07d}") for s in (10, 20)]
    assert all(u.unit.depends_on == () for u in evaluations)


def test_scorer_groups_are_annotated_as_their_own_arrays_with_their_own_resources(tmp_path):
    from dataclasses import replace

    import webdataset as wds

    from harness.study import DataStages

    (tmp_path / "shards").mkdir()
    with wds.TarWriter(str(tmp_path / "shards" / "data-000.tar")) as sink:
        sink.write({"__key__": "000001", "png": b"not read by the checks", "txt": "a caption"})
    study = load_study("smoke", overrides=[f"run.data.path={tmp_path / 'shards'}", "run.data.source=webdataset",
                                           'run.rewards.names=["pickscore", "vqascore"]'])
    study = replace(study, data=DataStages(annotate=("pickscore", "vqascore"), groups={"vqa": ("vqascore",)}, annotate_shards=3),
                    resources={"annotate": {"gpus_per_node": 1}, "annotate:vqa": {"mem_gb": 128}})
    assert study_problems(study) == []
    plan = plan_study(study, Store(tmp_path / "store"))
    annotate = [u for u in plan.data if u.unit.kind == "annotate"]
    assert [(u.group, u.unit.params["scorers"]) for u in annotate] == [("default", ["pickscore"])] * 3 + [("vqa", ["vqascore"])] * 3
    assert {u.group: dict(u.unit.resources) for u in annotate} == {"default": {"gpus_per_node": 1}, "vqa": {"gpus_per_node": 1, "mem_gb": 128}}
    assemble = [u for u in plan.data if u.unit.kind == "assemble"]
    assert len(assemble) == 1 and assemble[0].unit.depends_on == tuple(u.unit.key for u in annotate)
    assert {u.unit.depends_on for u in plan.train} == {(assemble[0].unit.key,)}


def test_data_without_images_is_a_problem_of_the_study(tmp_path):
    (tmp_path / "empty").mkdir()
    study = load_study("smoke", overrides=[f"run.data.path={tmp_path / 'empty'}", "run.data.source=webdataset",
                                           "data.annotate=('pickscore',)", "run.rewards.names=[\"pickscore\"]"])
    assert any("data.path" in p and "empty" in p for p in study_problems(study))


def test_precompute_shards_are_an_array_that_training_waits_for_and_reads(tmp_path):
    from dataclasses import replace

    from harness.study import DataStages

    overrides = [f"run.data.path={tmp_path / 'shards'}", "run.data.source=webdataset", 'run.rewards.names=["pickscore"]',
                 f"run.text.path={tmp_path / 't5'}", "run.text.encoder=t5"]
    study = load_study("smoke", overrides=overrides)
    store = Store(tmp_path / "store")

    def planned(shards):
        return plan_study(replace(study, data=DataStages(annotate=("pickscore",), precompute=True, precompute_shards=shards)), store)

    plan = planned(3)
    precompute = [u for u in plan.data if u.unit.kind == "precompute"]
    assemble = [u.unit.key for u in plan.data if u.unit.kind == "assemble"]
    assert [(u.unit.params["shard"], u.unit.params["shards"]) for u in precompute] == [(0, 3), (1, 3), (2, 3)]
    assert {u.unit.params["text_path"] for u in precompute} == {str(tmp_path / "t5")} and {u.unit.params["vae_path"] for u in precompute} == {""}
    assert {u.unit.depends_on for u in plan.train} == {(*assemble, *(u.unit.key for u in precompute))}
    assert {u.unit.params["config"]["data"]["features"] for u in plan.train} == {precompute[0].unit.params["out"]}
    resharded = planned(2)
    assert keys(resharded, "train") != keys(plan, "train")  # another feature set
    assert {u.unit.key for u in resharded.data if u.unit.kind == "annotate"} == {u.unit.key for u in plan.data if u.unit.kind == "annotate"}
    unprecomputed = plan_study(replace(study, data=DataStages(annotate=("pickscore",))), store)
    assert [u.unit.kind for u in unprecomputed.data] == ["annotate", "assemble"]
    assert {u.unit.params["config"]["data"]["features"] for u in unprecomputed.train} == {""}


def test_the_released_study_evaluates_every_imported_run_against_the_main_release(tmp_path, monkeypatch):
    import json
    from dataclasses import replace

    from miro.config import to_dict
    from miro.presets import preset

    monkeypatch.delenv("MIRO_WEIGHTS", raising=False)
    main = preset("smoke")
    variants = {"miro": main, "aesthetic-only": replace(main, rewards=replace(main.rewards, names=main.rewards.names[:1]))}
    for name, config in variants.items():
        (tmp_path / "released" / name / "checkpoints" / "step-0000000").mkdir(parents=True)
        (tmp_path / "released" / name / "config.json").write_text(json.dumps(to_dict(replace(config, name=name))))
    study = load_study("released", {"data": str(tmp_path / "released")})
    assert [(a.name, a.baseline, a.ablates) for a in study.arms] == [("miro", None, ()), ("aesthetic-only", "miro", ("rewards.names",))]
    plan = plan_study(study, Store(tmp_path / "store"))
    assert plan.train == [] and {s.name for s in study.evaluation} == {"geneval", "parti"}
    assert sorted((u.arm, u.unit.params["checkpoint"]) for u in plan.evaluate if u.suite == "parti") == [
        (name, str(tmp_path / "released" / name / "checkpoints" / "step-0000000")) for name in ("aesthetic-only", "miro")]
    with pytest.raises(MiroError, match="holds no imported run folder miro/"):
        load_study("released", {"data": str(tmp_path)})


def test_the_default_study_trains_specialists_once_and_evaluates_them_at_the_end(tmp_path):
    study = load_study("default")
    plan = plan_study(study, Store(tmp_path / "store"))
    assert sorted((u.arm, u.seed) for u in plan.train) == sorted(
        [("baseline", 0), ("baseline", 1), ("miro", 0), ("miro", 1), ("only-alignment", 0), ("only-quality", 0), ("only-size", 0)])
    last = max(study.eval_steps)
    assert {(u.seed, u.step) for u in plan.evaluate if u.arm.startswith("only-")} == {(0, last)}
    assert {u.step for u in plan.evaluate if u.arm == "miro"} == set(study.eval_steps)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("eval_steps", (10,), "eval_steps \\[10\\] must be some of the study's \\[10, 20\\], its last included"),
    ("seeds", (1,), "seeds \\[1\\] must be some of the study's \\[0, 1\\], its first included"),
])
def test_an_arm_s_own_steps_or_seeds_outside_the_study_s_are_refused(field, value, message):
    from dataclasses import replace

    study = load_study("smoke")
    arms = (study.arms[0], replace(study.arms[1], **{field: value}))
    with pytest.raises(MiroError, match=message):
        validate(replace(study, arms=arms, seeds=(0, 1)))


def test_dry_run_splits_an_array_larger_than_the_cluster_allows(tmp_path, capsys):
    main(["smoke", "--root", str(tmp_path), "--dry-run", "--executor", "slurm", "--set", "evaluation.shapes.shards=600"])
    out = capsys.readouterr().out
    assert "generate  2400 units" in out and "(2400 unit(s), 3 arrays of at most 1001 (MaxArraySize); the first)" in out
    assert "#SBATCH --array=0-1000" in out
