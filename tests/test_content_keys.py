"""Units are keyed by the content of what they read: a weights file, a data shard or a prompt file changed in place
(same path) gives exactly the units that read it, and the units downstream of them, new keys, and `--status` says
why; the same files under another path change no key. Planned on the paper's study shrunk to tiny real-format
weights (tests/real_study.py) plus an evaluate-only arm, with every planned unit marked done in between."""
from __future__ import annotations

import io
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from real_study import png, write_study

import miro.content
from harness.checks import validate
from harness.identity import CONTENT
from harness.plan import Plan, plan_study
from harness.store import Store
from harness.study import Arm
from harness.study_file import load_study
from harness.sweep import main as sweep_main
from miro.checkpoint import checkpoint_path
from miro.content import ABSENT, content_identity


@pytest.fixture(scope="module")
def study_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("keys")
    write_study(root)
    imported = checkpoint_path(root / "imported", 20)  # an evaluate-only arm's run folder (planning reads only its files)
    imported.mkdir(parents=True)
    (imported / "ema.safetensors").write_bytes(b"released weights")
    return root


def planned(root: Path, *overrides: str) -> tuple[Plan, Store]:
    study = load_study(str(root / "my_study.py"), overrides=overrides)
    miro = study.arm("miro")
    study = replace(study, arms=(*study.arms, Arm("imported", miro.config, ablates=("optim",), baseline="miro",
                                                   evaluate_only=str(root / "imported"), eval_steps=(20,))))
    validate(study)
    store = Store(root / "runs" / "store")
    return plan_study(study, store), store


def units(plan: Plan) -> list:
    return [p for _, wave in plan.waves for p in wave]


def finish_all(root: Path, *overrides: str) -> None:
    plan, store = planned(root, *overrides)
    for p in units(plan):
        store.set_state(p.unit.key, "done")


def rerun(root: Path, *overrides: str) -> Counter:
    """(kind, arm, suite) of every planned unit that is not done."""
    plan, store = planned(root, *overrides)
    return Counter((p.unit.kind, p.arm, p.unit.params.get("suite", {}).get("name")) for p in units(plan)
                   if store.state(p.unit.key) != "done")


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))


def test_a_weights_file_changed_in_place_reruns_exactly_the_evaluations_that_read_it(study_root, capsys):
    finish_all(study_root)
    assert rerun(study_root) == Counter()
    detector = study_root / "weights" / "mask2former" / "model.safetensors"
    flip_last_byte(detector)  # GenEval's detector: read by the GenEval suite's evaluations of every arm, nothing else
    evaluations = {("baseline", 2), ("miro", 2), ("imported", 1)}  # (arm, evaluated steps), each generated as 2 shards
    assert rerun(study_root) == Counter({**{("evaluate", arm, "geneval"): n for arm, n in evaluations},
                                         **{("generate", arm, "geneval"): 2 * n for arm, n in evaluations}})
    capsys.readouterr()
    sweep_main([str(study_root / "my_study.py"), "--root", str(study_root / "runs"), "--status"])
    out = capsys.readouterr().out
    # the study file has no evaluate-only arm: 4 evaluations and their 8 shards
    assert f"4 evaluate unit(s) run again: {study_root / 'weights' / 'mask2former'} changed" in out, out
    assert "8 unit(s) that read theirs run again with them (8 generate)" in out


def test_a_data_shard_changed_in_place_reruns_everything_trained_on_it_and_no_evaluate_only_arm(study_root, capsys):
    import random

    import webdataset as wds

    finish_all(study_root)
    shard = study_root / "shards" / "data-001.tar"
    with wds.TarWriter(str(shard)) as sink:  # the same keys and captions, other pixels
        for i in range(32):
            sink.write({"__key__": f"{32 + i:06d}", "png": png((0, 0, 0), random.Random(i)), "txt": "a photo of a red circle"})
    changed = rerun(study_root)
    assert {kind for kind, _, _ in changed} == {"annotate", "assemble", "precompute", "train", "tune", "generate", "evaluate"}
    assert changed[("annotate", None, None)] == 2 and changed[("precompute", None, None)] == 2
    assert not any(arm == "imported" for _, arm, _ in changed)  # it reads no training data
    capsys.readouterr()
    sweep_main([str(study_root / "my_study.py"), "--root", str(study_root / "runs"), "--status"])
    out = capsys.readouterr().out
    assert f"2 annotate unit(s) run again: {study_root / 'shards'} changed" in out and "unit(s) that read theirs run again with them" in out


def test_an_evaluate_only_checkpoint_and_a_prompt_file_are_read_by_content(study_root):
    finish_all(study_root)
    flip_last_byte(checkpoint_path(study_root / "imported", 20) / "ema.safetensors")
    assert rerun(study_root) == Counter({("evaluate", "imported", "geneval"): 1, ("evaluate", "imported", "parti"): 1,
                                         ("generate", "imported", "geneval"): 2, ("generate", "imported", "parti"): 2})
    finish_all(study_root)
    with (study_root / "parti.tsv").open("a") as prompts:
        prompts.write("a green square\tshapes\tbasic\t\n")
    assert set(rerun(study_root)) == {(kind, arm, "parti") for kind in ("generate", "evaluate") for arm in ("baseline", "miro", "imported")}


def test_a_training_that_encodes_on_the_fly_reads_its_t5_folder_by_content(study_root):
    finish_all(study_root, "data.precompute=False")
    flip_last_byte(study_root / "weights" / "t5" / "model.safetensors")
    changed = rerun(study_root, "data.precompute=False")
    assert changed[("train", "baseline", None)] == changed[("train", "miro", None)] == 1
    assert not any(kind in ("annotate", "assemble") for kind, _, _ in changed)


def test_a_training_is_keyed_by_the_data_units_it_reads(study_root):
    """Annotated in 3 shards rather than 2, the assembled annotations are another unit: the trainings that read them
    are too, though their own config did not change."""
    before = {p.label: p.unit.key for p in units(planned(study_root)[0])}
    after = {p.label: p.unit.key for p in units(planned(study_root, "data.annotate_shards=3")[0])}
    assert [label for label in before if label.startswith("train") and after[label] == before[label]] == []
    assert [label for label in before if label.startswith("precompute") and after[label] != before[label]] == []


def test_the_same_content_under_another_path_changes_no_key(study_root):
    finish_all(study_root)
    moved = study_root / "elsewhere" / "prompts.tsv"
    moved.parent.mkdir()
    shutil.copy(study_root / "parti.tsv", moved)
    assert rerun(study_root, f"evaluation.parti.prompts={moved}") == Counter()


def test_every_file_the_weights_file_names_enters_the_key_of_some_unit(study_root):
    """A model or benchmark file left out of the keys would be one whose replacement silently reuses stale results."""
    import tomllib

    from harness.study import flatten

    plan, store = planned(study_root)
    read = {path for p in units(plan) for path in store.reads(p.unit.key).values()}
    named = {value for value in flatten(tomllib.loads((study_root / "weights.toml").read_text())).values()
             if isinstance(value, str) and Path(value).exists()}
    assert len(named) > 10 and sorted(named - read) == []


def test_a_unit_of_an_older_store_keyed_by_path_is_rerun_with_the_reason(tmp_path, capsys):
    prompts = tmp_path / "prompts.tsv"
    prompts.write_text("Prompt\tCategory\tChallenge\tNote\na red circle\tshapes\tbasic\t\n")
    from harness.identity import by_content, rerun_reasons

    store = Store(tmp_path / "store")
    store.set_state(store.register("tune", {"tuning": {"prompts": str(prompts)}, "code": "old"}), "done")  # keyed by path
    new = store.register("tune", *by_content({"tuning": {"prompts": str(prompts)}, "code": "new"}, ["tuning.prompts"],
                                              lambda p: content_identity(p, tmp_path / "cache")))
    assert store.inputs(new)["inputs"]["tuning"]["prompts"].startswith(CONTENT)
    assert rerun_reasons(store, [new]) == {new: f"the code that computes it changed; {prompts} is now identified by its content "
                                                "(a unit of an older store)"}


def test_content_identity_reads_a_file_once_until_it_changes(tmp_path, monkeypatch):
    calls = []
    real = miro.content.file_identity
    monkeypatch.setattr(miro.content, "file_identity", lambda path: calls.append(path) or real(path))
    folder, cache = tmp_path / "weights", tmp_path / "cache"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"a" * 100)
    (folder / "config.json").write_text("{}")
    first = content_identity(folder, cache)
    assert content_identity(folder, cache) == first and len(calls) == 2  # the second asks reads nothing
    (folder / ".model.safetensors.tmp-host-1").write_bytes(b"half")  # a writer's temporary is not content
    assert content_identity(folder, cache) == first
    (folder / "model.safetensors").write_bytes(b"b" * 100)  # same size, same path
    assert content_identity(folder, cache) != first and len(calls) == 3
    (folder / "model.safetensors").write_bytes(b"a" * 100)
    assert content_identity(folder, cache) == first
    (folder / "extra.bin").write_bytes(b"")
    assert content_identity(folder, cache) != first
    assert content_identity(tmp_path / "nothing", cache) == ABSENT


def test_a_large_file_is_identified_by_its_size_and_sampled_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(miro.content, "WHOLE_BYTES", 1 << 20)
    monkeypatch.setattr(miro.content, "BLOCK", 1 << 10)
    path = tmp_path / "big.safetensors"
    data = bytearray(io.BytesIO(bytes(range(256)) * (1 << 14)).getvalue())  # 4 MiB
    path.write_bytes(bytes(data))
    first = miro.content.file_identity(path)
    data[len(data) // 2] ^= 1  # in the middle block (block 7 of 16 starts at (size - block) * 7 / 15)
    data[(len(data) - (1 << 10)) * 7 // 15] ^= 1
    path.write_bytes(bytes(data))
    assert miro.content.file_identity(path) != first
    path.write_bytes(bytes(data) + b"x")
    assert miro.content.file_identity(path) != first
