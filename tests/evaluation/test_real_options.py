"""Evaluation options for real checkpoints: offline failures in one line, defaults that follow the checkpoint,
GenEval's thresholds from the command line, and --limit stratified by task."""
from __future__ import annotations

import argparse

import pytest

import harness.prompts as prompt_sets
from core_fixtures import refusal
from harness.evaluation.__main__ import default_reference, default_scorers, geneval_rules, parser
from harness.evaluation.run import EvaluationOptions, build_judge, stratified
from harness.geneval.metadata import fetch_verified, parse_prompt
from harness.prompts import Prompt, from_specs, load_prompts
from miro import weights_file
from miro.errors import MiroError

OFFLINE = "http://127.0.0.1:9/file"  # nothing listens on the discard port: fails at once, like an offline node


def test_offline_downloads_fail_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(prompt_sets, "PARTI_URL", OFFLINE)
    with pytest.raises(MiroError, match="downloads are off; on a machine with internet run: wget .* or rerun with --allow-download"):
        load_prompts("parti", cache=tmp_path)  # nothing downloads unasked
    with pytest.raises(MiroError, match=r"cannot download http://127.0.0.1:9/file \(.*\); on a machine with internet run: wget") as caught:
        load_prompts("parti", cache=tmp_path, allow_download=True)
    assert "\n" not in str(caught.value)
    with pytest.raises(MiroError, match="cannot download"):  # GenEval's object_names.txt goes through the same fetch
        fetch_verified(OFFLINE, tmp_path / "object_names.txt", "0" * 64)


def test_the_colour_classifier_never_downloads_unasked():
    spec = parse_prompt({"tag": "colors", "include": [{"class": "cat", "count": 1, "color": "red"}], "prompt": "a red cat"})
    options = EvaluationOptions(prompts="x.jsonl", geneval_detector="/weights/mask2former", reference="", features="")
    with pytest.raises(MiroError, match='weights "openai" are not a local file; pass --geneval-colors FILE .* or --allow-download'):
        build_judge(options, from_specs([spec]), None, "cpu")


def test_defaults_follow_the_checkpoint(tmp_path):
    args = parser().parse_args(["--checkpoint", "c", "--out", "o"])
    assert default_reference(args, shapes=True, weights=weights_file.WeightsFile()) == "shapes"
    assert default_reference(args, shapes=False, weights=weights_file.WeightsFile()) == ""  # no FID without a reference
    (tmp_path / "coco").mkdir()
    named = weights_file.parse({"benchmarks": {"fid_reference": str(tmp_path / "coco")}})
    assert default_reference(args, shapes=False, weights=named) == str(tmp_path / "coco")
    assert default_reference(parser().parse_args(["--checkpoint", "c", "--out", "o", "--reference", "none"]), False, named) == ""


def test_geneval_thresholds_are_options():
    args = parser().parse_args(["--checkpoint", "c", "--out", "o", "--geneval-threshold", "0.5", "--geneval-max-objects", "4"])
    file = weights_file.parse({"geneval": {"counting_threshold": 0.8, "threshold": 0.1}})
    rules = geneval_rules(args, file)
    assert (rules.threshold, rules.counting_threshold, rules.max_objects, rules.max_overlap) == (0.5, 0.8, 4, 1.0)
    with pytest.raises(MiroError, match="threshold must be in"):
        geneval_rules(argparse.Namespace(**{**vars(args), "geneval_threshold": 1.5}), file)


def test_limit_takes_prompts_across_tasks():
    prompts = [Prompt(i, f"p{i}", tag, "{}") for i, tag in enumerate(["single"] * 5 + ["two"] * 3 + ["count"] * 2)]
    picked = stratified(prompts, 4)
    assert [p.group for p in picked] == ["single", "single", "two", "count"] and [p.index for p in picked] == [0, 1, 5, 8]
    assert stratified(prompts, 100) == prompts


def test_tune_takes_scorers_and_their_options(tmp_path, monkeypatch):
    import harness.tune as tuning

    seen = {}
    monkeypatch.setattr(tuning, "tune", lambda checkpoint, out, options, weights=None: seen.update(options=options) or {"trials": []})
    (tmp_path / "w.toml").write_text(f'[scorers.pickscore]\nmodel_dir = "{tmp_path}"\n')
    tuning.main(["--checkpoint", "c", "--out", str(tmp_path / "t"), "--prompts", "parti.tsv", "--weights", str(tmp_path / "w.toml"),
                 "--scorers", "pickscore", "clip_score", "--scorer-option", "clip_score.model_dir=/w/clip"])
    assert seen["options"].scorers == ("pickscore", "clip_score")
    assert seen["options"].scorer_options == {"pickscore": {"model_dir": str(tmp_path)}, "clip_score": {"model_dir": "/w/clip"}}
    assert '--scorer-option "clip_score" is not NAME.KEY=VALUE' in refusal(
        tuning.main, ["--checkpoint", "c", "--out", str(tmp_path / "t"), "--scorer-option", "clip_score"])


def test_scorers_default_to_the_weights_file_then_the_trained_rewards():
    args = parser().parse_args(["--checkpoint", "c", "--out", "o"])
    named = weights_file.parse({"scorers": {"clip_score": {"device": "cpu"}}})
    assert default_scorers(args, True, named, ("a",)) is None  # shapes: every shapes reward
    assert default_scorers(args, False, named, ("hpsv2",)) == ("clip_score",)
    assert default_scorers(args, False, weights_file.WeightsFile(), ("hpsv2",)) == ("hpsv2",)
    assert default_scorers(parser().parse_args(["--checkpoint", "c", "--out", "o", "--scorers", "x"]), False, named, ()) == ("x",)
