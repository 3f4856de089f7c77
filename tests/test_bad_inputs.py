"""Bad input to every command: refused before any work, with exactly one line on stderr, no traceback, a
non-zero exit, and every file left byte-identical.

Most cases run the command's `main(argv)` in this process (what `python -m ...` runs, minus the
interpreter start), which proves the same one-line stderr; a handful run as true subprocesses.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import harness.evaluation.__main__ as evaluation_cli
import harness.sweep as sweep_cli
import harness.tune as tune_cli
import miro.__main__ as miro_cli
import reports.__main__ as reports_cli

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a trained two-step smoke run (run/), its prepared data (data/) and a copy to damage."""
    root = tmp_path_factory.mktemp("world")
    miro_cli.main(["train", "--preset", "smoke", "--out", str(root / "run"), "--data-root", str(root / "data"),
                   "--set", "optim.steps=2"])
    return root


def snapshot(folder: Path) -> dict[str, str]:
    """Every file's hash (a run folder's lock file is not content: a refused writer still takes it first)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*")) if p.name != ".lock"}


def refuse(main: Callable[[list[str]], object], argv: list[str], folder: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Run `main(argv)`: it must exit 2 with one `error:` line on stderr and change nothing under `folder`."""
    capsys.readouterr()
    before = snapshot(folder)
    with pytest.raises(SystemExit) as exit:
        main(argv)
    err = capsys.readouterr().err
    assert exit.value.code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert snapshot(folder) == before
    return err


def run_dir(world: Path) -> str:
    return str(world / "run")


# (case id, argv builder given the world folder, text the one line must hold)
TRAIN = [
    ("zero-steps", lambda w: ["train", "--out", f"{w}/t", "--set", "optim.steps=0", "--dry-run"], "optim.steps = 0 is out of range"),
    ("negative-lr", lambda w: ["train", "--out", f"{w}/t", "--set", "optim.lr=-1"], "optim.lr = -1"),
    ("inf-guidance", lambda w: ["train", "--out", f"{w}/t", "--set", "sample.guidance_scale=Infinity", "--dry-run"], "sample.guidance_scale = inf"),
    ("nan-guidance", lambda w: ["train", "--out", f"{w}/t", "--set", "sample.guidance_scale=NaN", "--dry-run"], "sample.guidance_scale = nan"),
    ("batch-not-divisible", lambda w: ["train", "--out", f"{w}/t", "--set", "optim.batch_size=6", "--set", "optim.grad_accum=4", "--dry-run"], "not divisible"),
    ("unknown-reward", lambda w: ["train", "--out", f"{w}/t", "--set", 'rewards.names=["shapes_qualty"]', "--dry-run"], 'did you mean "shapes_quality"'),
    ("misspelt-key", lambda w: ["train", "--out", f"{w}/t", "--set", "optim.step=3", "--dry-run"], 'did you mean "steps"'),
    ("misspelt-world-key", lambda w: ["train", "--out", f"{w}/t", "--set", "data.world.nois_prob=0.1", "--dry-run"], 'did you mean "noise_prob"'),
    ("world-value-out-of-range", lambda w: ["train", "--out", f"{w}/t", "--set", "data.world.noise_prob=2", "--dry-run"], "noise_prob=2"),
    ("world-on-real-data", lambda w: ["train", "--out", f"{w}/t", "--set", "data.source=folder", "--set", f"data.path={w}",
                                      "--set", "data.world.noise_prob=0", "--dry-run"], "data.world is set but"),
    ("dropout-above-one", lambda w: ["train", "--out", f"{w}/t", "--set", "rewards.dropout_p=2", "--dry-run"], "rewards.dropout_p = 2"),
    ("unknown-preset", lambda w: ["train", "--preset", "smok", "--out", f"{w}/t"], "invalid choice"),
    ("no-out", lambda w: ["train", "--dry-run"], "--out"),
    ("zero-checkpoint-every", lambda w: ["train", "--out", f"{w}/t", "--set", "checkpoint_every=0", "--dry-run"], "checkpoint_every = 0"),
    ("absurd-steps-dry-run", lambda w: ["train", "--out", f"{w}/t", "--set", "optim.steps=1000000000000", "--dry-run"], "or pass --force"),
    ("negative-weight-decay", lambda w: ["train", "--out", f"{w}/t", "--set", "optim.weight_decay=-1", "--dry-run"], "optim.weight_decay = -1.0"),
    ("missing-data-dry-run", lambda w: ["train", "--out", f"{w}/t", "--set", "data.source=folder", "--set", f"data.path={w}/nowhere",
                                        "--dry-run"], "data.path = "),
]
SAMPLE = [
    ("zero-samples", lambda w: ["sample", run_dir(w), "--caption", "a", "--samples", "0", "--out", f"{w}/g.png"], "--samples: 0 is out of range"),
    ("negative-samples", lambda w: ["sample", run_dir(w), "--caption", "a", "--samples", "-3", "--out", f"{w}/g.png"], "allowed: an integer >= 1"),
    ("text-samples", lambda w: ["sample", run_dir(w), "--caption", "a", "--samples", "abc", "--out", f"{w}/g.png"], "not an integer"),
    ("nan-guidance", lambda w: ["sample", run_dir(w), "--caption", "a", "--guidance", "nan", "--out", f"{w}/g.png"], "--guidance: nan is out of range"),
    ("inf-guidance", lambda w: ["sample", run_dir(w), "--caption", "a", "--guidance", "inf", "--out", f"{w}/g.png"], "--guidance: inf is out of range"),
    ("target-above-one", lambda w: ["sample", run_dir(w), "--caption", "a", "--target", "shapes_quality=2", "--out", f"{w}/g.png"], "must lie in [0, 1]"),
    ("target-not-a-pair", lambda w: ["sample", run_dir(w), "--caption", "a", "--target", "bogus", "--out", f"{w}/g.png"], "name=value"),
    ("unknown-target", lambda w: ["sample", run_dir(w), "--caption", "a", "--target", "shapes_qualty=1", "--out", f"{w}/g.png"], 'did you mean "shapes_quality"'),
    ("no-checkpoint", lambda w: ["sample", f"{w}/nowhere", "--caption", "a", "--out", f"{w}/g.png"], "holds no checkpoint"),
    ("out-folder-missing", lambda w: ["sample", run_dir(w), "--caption", "a", "--out", f"{w}/no/such/g.png"], "does not exist"),
    ("negative-seed", lambda w: ["sample", run_dir(w), "--caption", "a", "--seed", "-1", "--out", f"{w}/g.png"], "--seed: -1 is out of range"),
    ("out-is-a-folder", lambda w: ["sample", run_dir(w), "--caption", "a", "--out", f"{w}/run"], "is not an image file name"),
]
ANNOTATE = [
    ("zero-samples", lambda w: ["annotate", "--samples", "0", "--out", f"{w}/ann"], "--samples: 0 is out of range"),
    ("zero-batch", lambda w: ["annotate", "--samples", "8", "--batch-size", "0", "--out", f"{w}/ann"], "--batch-size: 0"),
    ("shard-past-count", lambda w: ["annotate", "--samples", "8", "--shard", "3/2", "--out", f"{w}/ann"], "I must lie in [0, N)"),
    ("shard-not-a-pair", lambda w: ["annotate", "--samples", "8", "--shard", "x", "--out", f"{w}/ann"], "I/N"),
    ("unknown-scorer", lambda w: ["annotate", "--samples", "8", "--scorer", "shapes_sise", "--out", f"{w}/ann"], 'did you mean "shapes_size"'),
    ("tiny-resolution", lambda w: ["annotate", "--samples", "8", "--resolution", "0", "--out", f"{w}/ann"], "--resolution: 0"),
    ("folder-without-path", lambda w: ["annotate", "--source", "folder", "--out", f"{w}/ann"], "--path is required"),
]
SWEEP = [
    ("max-parallel-zero", ["smoke", "--max-parallel", "0"], "--max-parallel: 0 is out of range"),
    ("max-parallel-zero-dry-run", ["smoke", "--max-parallel", "0", "--dry-run"], "--max-parallel: 0 is out of range"),
    ("samples-zero", ["smoke", "--set", "evaluation.samples_per_prompt=0"], "samples_per_prompt = 0"),
    ("samples-zero-dry-run", ["smoke", "--set", "evaluation.samples_per_prompt=0", "--dry-run"], "samples_per_prompt = 0"),
    ("trials-zero", ["smoke", "--set", "tuning.trials=0", "--dry-run"], "trials must be >= 1"),
    ("control-target-above-one", ["smoke", "--set", "control.values=[0,2]", "--dry-run"], "control.values = [0, 2]"),
    ("threads-zero", ["smoke", "--threads", "0"], "--threads: 0"),
    ("unknown-sweep", ["smok"], 'did you mean "smoke"'),
    ("unknown-executor", ["smoke", "--executor", "lokal"], "invalid choice"),
    ("time-min-zero", ["smoke", "--time-min", "0", "--dry-run"], "--time-min: 0"),
    ("mem-nan", ["smoke", "--mem-gb", "nan", "--dry-run"], "--mem-gb: nan"),
    ("sbatch-not-a-pair", ["smoke", "--sbatch", "exclusive", "--dry-run"], "key=value"),
    ("two-nodes-on-local", ["smoke", "--nodes", "2", "--dry-run"], "runs on one node"),
    ("status-and-bad-count", ["smoke", "--status", "--set", "evaluation.samples_per_prompt=-1"], "samples_per_prompt = -1"),
    ("eval-step-zero", ["smoke", "--set", "eval_steps=[0]", "--dry-run"], "eval_steps [0] must be >= 1"),
    ("repeated-seeds", ["smoke", "--set", "seeds=[0,0]", "--dry-run"], "seeds [0, 0] repeat [0]"),
    ("negative-limit", ["smoke", "--set", "evaluation.limit=-1", "--dry-run"], "limit = -1 must be >= 0"),
    ("name-escaping-the-store", ["smoke", "--set", "name=../../elsewhere", "--dry-run"], "study name '../../elsewhere' cannot name a folder"),
    ("suite-scorer-option-unknown", ["smoke", "--set", "evaluation.scorer_options.shapes_quality.sharpnes=1", "--dry-run"],
     'scorer shapes_quality has no option "sharpnes"'),
]
ABSURD_PLANS = [  # judged on the plan, so its units are registered (pending): nothing runs, nothing finished is touched
    ("absurd-steps-dry-run", ["smoke", "--set", "run.optim.steps=1000000000000", "--dry-run"], "over --max-gpu-hours 100,000"),
    ("absurd-steps", ["smoke", "--set", "run.optim.steps=1000000000000"], "or pass --force"),
    ("unit-longer-than-a-year", ["smoke", "--set", "run.optim.steps=1000000000", "--max-gpu-hours", "1e12", "--dry-run"], "longer than a year"),
]
EVALUATE = [
    ("zero-samples", ["--samples", "0"], "--samples: 0"),
    ("nan-guidance", ["--guidance", "nan"], "--guidance: nan"),
    ("inf-guidance-dry-run", ["--guidance", "inf", "--dry-run"], "--guidance: inf"),
    ("zero-steps-dry-run", ["--steps", "0", "--dry-run"], "--steps: 0"),
    ("zero-shift", ["--shift", "0", "--dry-run"], "--shift: 0"),
    ("shard-past-count", ["--shard", "2/2", "--dry-run"], "shard 2/2"),
    ("unknown-scorer-dry-run", ["--scorers", "shapes_sise", "--dry-run"], "unknown scorer"),
    ("unknown-sweep-reward-dry-run", ["--sweep", "shapes_sise", "--dry-run"], 'did you mean "shapes_size"'),
    ("sweep-value-above-one", ["--sweep", "shapes_size", "--sweep-values", "2"], "--sweep-values: 2"),
    ("target-above-one", ["--positive", "shapes_quality=5", "--dry-run"], "must lie in [0, 1]"),
    ("negative-limit", ["--limit", "-1"], "--limit: -1"),
    ("scorer-option-for-absent-scorer", ["--scorer-option", "pickscore.model_dir=/x", "--dry-run"], "not among the scorers"),
    ("prompts-missing-dry-run", ["--prompts", "nowhere.tsv", "--dry-run"], "PartiPrompts file not found"),
    ("features-misspelt-dry-run", ["--features", "pixel", "--dry-run"], '--features "pixel" is not allowed'),
    ("inception-weights-missing-dry-run", ["--features", "inception=nowhere.pt", "--dry-run"], "Inception weights nowhere.pt do not exist"),
    ("reference-missing-dry-run", ["--reference", "nowhere", "--dry-run"], "--reference nowhere is not a folder"),
    ("scorer-option-unknown-key", ["--scorers", "shapes_quality", "--scorer-option", "shapes_quality.bogus=1"],
     'scorer shapes_quality has no option "bogus"'),
]
TUNE = [
    ("zero-trials", ["--trials", "0"], "--trials: 0"),
    ("test-prompts", ["--prompts", "shapes-test"], "test split"),
    ("minimise-not-an-objective", ["--minimise", "fid"], "not among the objectives"),
]


@pytest.mark.parametrize("case", TRAIN + SAMPLE + ANNOTATE, ids=lambda c: f"miro-{c[1](Path('w'))[0]}-{c[0]}")
def test_miro_commands_refuse_bad_input(case, world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, argv, expected = case
    assert expected in refuse(miro_cli.main, argv(world), world, capsys)


@pytest.mark.parametrize("case", SWEEP, ids=lambda c: c[0])
def test_the_sweep_refuses_bad_options_before_touching_the_store(case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, argv, expected = case
    assert expected in refuse(sweep_cli.main, [*argv, "--root", str(tmp_path)], tmp_path, capsys)


@pytest.mark.parametrize("case", ABSURD_PLANS, ids=lambda c: c[0])
def test_an_absurd_plan_is_refused_unless_forced(case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.store import Store

    _, argv, expected = case
    assert expected in refuse(sweep_cli.main, [*argv, "--root", str(tmp_path / "runs")], tmp_path / "runs" / "sweeps", capsys)
    assert {status.state for status in Store(tmp_path / "runs" / "store").status().values()} == {"pending"}
    assert not (tmp_path / "runs" / "sweeps").exists() and not (tmp_path / "runs" / "jobs").exists()
    if "--dry-run" in argv:
        sweep_cli.main([*argv, "--root", str(tmp_path / "runs"), "--force"])
        assert "estimate" in capsys.readouterr().out


@pytest.mark.parametrize("case", EVALUATE, ids=lambda c: c[0])
def test_the_evaluation_refuses_bad_options(case, world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, extra, expected = case
    argv = ["--checkpoint", run_dir(world), "--out", str(world / "eval"), "--no-progress", *extra]
    assert expected in refuse(evaluation_cli.main, argv, world, capsys)


@pytest.mark.parametrize("case", TUNE, ids=lambda c: c[0])
def test_tuning_refuses_bad_options(case, world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, extra, expected = case
    argv = ["--checkpoint", run_dir(world), "--out", str(world / "study"), *extra]
    assert expected in refuse(tune_cli.main, argv, world, capsys)


def test_the_report_refuses_a_missing_or_damaged_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "sweep.json" in refuse(reports_cli.main, [str(tmp_path / "nowhere")], tmp_path, capsys)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "sweep.json").write_text('{"name": "x"')
    assert "sweep.json" in refuse(reports_cli.main, [str(tmp_path / "bad")], tmp_path, capsys)


def damaged_copy(world: Path, tmp_path: Path, name: str, content: bytes) -> Path:
    """A copy of the trained run's checkpoint with one file replaced by `content`."""
    import shutil

    source = next((world / "run" / "checkpoints").iterdir())
    copy = tmp_path / "ckpt" / source.name
    shutil.copytree(source, copy)
    (copy / name).write_bytes(content)
    return copy


@pytest.mark.parametrize("name, content", [
    ("ema.safetensors", b"garbage"), ("ema.safetensors", b""), ("train.safetensors", b"\x00" * 9),
    ("manifest.json", b'{"config": '), ("manifest.json", b"{}"), ("state.json", b"not json"),
])
def test_a_damaged_checkpoint_is_named_with_the_fix(name: str, content: bytes, world: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    copy = damaged_copy(world, tmp_path, name, content)
    err = refuse(miro_cli.main, ["sample", str(copy), "--caption", "a", "--out", str(tmp_path / "g.png")], tmp_path, capsys)
    assert name in err and ("corrupt" in err or "lacks" in err) and "delete the folder" in err


def test_a_damaged_run_config_stops_a_resume_with_the_fix(world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    shutil.copytree(world / "run", tmp_path / "run")
    (tmp_path / "run" / "config.json").write_text("{not json")
    err = refuse(miro_cli.main, ["train", "--preset", "smoke", "--out", str(tmp_path / "run"), "--data-root", str(world / "data"),
                                 "--set", "optim.steps=2"], tmp_path, capsys)
    assert "config.json is corrupt" in err and "manifest.json" in err


def test_a_damaged_optimizer_state_stops_a_resume_with_the_fix(world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    shutil.copytree(world / "run", tmp_path / "run")
    (next((tmp_path / "run" / "checkpoints").iterdir()) / "optimizer.pt").write_bytes(b"PK\x03\x04 truncated")
    err = refuse(miro_cli.main, ["train", "--preset", "smoke", "--out", str(tmp_path / "run"), "--data-root", str(world / "data"),
                                 "--set", "optim.steps=2"], tmp_path, capsys)
    assert "optimizer.pt is corrupt" in err and "delete the folder" in err


def test_a_full_disk_is_one_line_and_loses_nothing(world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import errno

    import torchvision.utils

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "g.png"))

    monkeypatch.setattr(torchvision.utils, "save_image", full)
    err = refuse(miro_cli.main, ["sample", run_dir(world), "--caption", "a", "--samples", "1", "--out", str(tmp_path / "g.png")],
                 world, capsys)
    assert "No space left on device" in err and "free disk space" in err


def test_a_read_only_output_folder_is_one_line(world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import errno

    import torchvision.utils

    def read_only(*args: object, **kwargs: object) -> None:  # (chmod cannot stop root, who runs CI here)
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "g.png"))

    monkeypatch.setattr(torchvision.utils, "save_image", read_only)
    err = refuse(miro_cli.main, ["sample", run_dir(world), "--caption", "a", "--samples", "1", "--out", str(tmp_path / "g.png")],
                 world, capsys)
    assert "Read-only file system" in err and "choose a writable output folder" in err


SUBPROCESS_CASES = [  # a bad command line, a bad config value, a missing input: each path to stderr once, as `python -m`
    ["-m", "miro", "sample", "nowhere", "--caption", "a", "--samples", "0"],
    ["-m", "miro", "train", "--out", "x", "--set", "optim.steps=0", "--dry-run"],
    ["-m", "reports", "nowhere"],
]


def test_as_true_subprocesses_every_command_exits_2_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, *argv], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for argv in SUBPROCESS_CASES]
    for argv, proc in zip(SUBPROCESS_CASES, procs):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (argv, err)
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("name", ["images.safetensors", "captions.json"])
def test_damaged_prepared_data_is_named_with_the_fix(name: str, world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    shutil.copytree(world / "data", tmp_path / "data")
    target = next((tmp_path / "data").rglob(name))
    target.write_bytes(target.read_bytes()[:20])  # truncated
    err = refuse(miro_cli.main, ["train", "--preset", "smoke", "--out", str(tmp_path / "run"), "--data-root", str(tmp_path / "data"),
                                 "--set", "optim.steps=2"], tmp_path, capsys)
    assert f"{name} is corrupt or truncated" in err and "to prepare the data again" in err


RELEASED_NET = dict(data_size=8, data_dim=64, num_input_channels=4, num_latents=16, latents_dim=64, label_dim=32, num_processing_layers=1,
                    num_blocks=2, patch_size=2, num_cond_tokens=77, read_write_heads=4, compute_heads=4, use_cond_rin_block=True,
                    concat_cond_token_to_latents=False, use_self_conditioning=True, num_text_registers=4,
                    coherence_keys=["clip_score", "aesthetic_score"], coherence_dropout=0.0, dropout_strategy="none")


def released_folder(root: Path, config: object = None, weights: bytes | None = None, null_shape: tuple[int, ...] = (6, 32)) -> Path:
    """A folder in the released layout (config.json, model.safetensors, uncond_embedding.npy) with one part replaced."""
    import json

    import numpy as np
    import torch
    from safetensors.torch import save_file

    root.mkdir(parents=True)
    given = {"network": RELEASED_NET, "preconditioning": {}, "max_text_len": 6} if config is None else config
    (root / "config.json").write_text(given if isinstance(given, str) else json.dumps(given))
    if weights is None:
        save_file({"network.latents": torch.zeros(16, 64)}, str(root / "model.safetensors"))
    else:
        (root / "model.safetensors").write_bytes(weights)
    np.save(root / "uncond_embedding.npy", np.zeros(null_shape, dtype=np.float32))
    return root


def scheduler(**block: object) -> dict:
    return {"network": RELEASED_NET, "preconditioning": {}, "max_text_len": 6, "scheduler": block}


IMPORT = [  # (case, folder builder given a root, text the one line must hold)
    ("config-not-json", lambda r: released_folder(r, config="{network: "), "config.json is corrupt or truncated"),
    ("config-without-network", lambda r: released_folder(r, config={"unet": {}}), 'no "network" table'),
    ("config-missing-size", lambda r: released_folder(r, config={"network": {**RELEASED_NET, "data_size": None}}), "is not a released MIRO config"),
    ("garbage-weights", lambda r: released_folder(r, weights=bytes(range(200))), "model.safetensors is corrupt or truncated"),
    ("null-embedding-of-another-width", lambda r: released_folder(r, null_shape=(6, 48)), "not (tokens, 32)"),
    ("scheduler-range", lambda r: released_folder(r, config=scheduler(start=0.5, end=0)), "runs gamma from 0.5 to 0"),
    ("scheduler-unknown-argument", lambda r: released_folder(r, config=scheduler(sigma_max=80)), "['sigma_max']"),
    ("scheduler-clamped", lambda r: released_folder(r, config=scheduler(clip_min=0.05)), "clip_min = 0.05"),
    ("scheduler-shift-text", lambda r: released_folder(r, config=scheduler(shift="3")), "scheduler.shift = '3' is not a number"),
    ("weights-of-other-sizes", lambda r: released_folder(r, config={**scheduler(), "network": {**RELEASED_NET, "latents_dim": 32}}),
     "does not fit its config.json"),
]


@pytest.mark.parametrize("case", IMPORT, ids=lambda c: c[0])
def test_import_released_refuses_a_damaged_or_unrepresentable_release(case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, build, expected = case
    folder = build(tmp_path / "released")
    argv = ["import-released", str(folder), "--out", str(tmp_path / "run"), "--text-encoder", "t5", "--vae", "vae"]
    assert expected in refuse(miro_cli.main, argv, tmp_path, capsys)
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_weights_check_opens_every_file_in_its_format_and_names_each_broken_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The broken files that once passed: random bytes named .safetensors, a folder where a file belongs and the
    reverse, a T5 folder without its tokenizer, a scorer table that names none of its files (clip_score reads its
    processor from its model folder: only model_dir is missing)."""
    import shutil

    from miro.tiny.clip import write_model, write_processor
    from miro.tiny.models import save_tiny_t5

    t5 = save_tiny_t5(tmp_path / "t5")
    shutil.copytree(t5, tmp_path / "t5-no-tokenizer")
    (tmp_path / "t5-no-tokenizer" / "tokenizer.json").unlink()
    model = write_model(tmp_path / "pickscore", seed=0)
    (model / "model.safetensors").write_bytes(bytes(range(200)))  # 200 random bytes named as a safetensors file
    (tmp_path / "colors.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    (tmp_path / "weights.toml").write_text(f"""
[t5]
path = "{tmp_path / 't5-no-tokenizer'}"
[vae]
path = "{tmp_path / 'colors.safetensors'}"
[scorers.pickscore]
model_dir = "{model}"
processor_dir = "{write_processor(tmp_path / 'processor')}"
[scorers.hpsv2]
checkpoint = "{tmp_path / 'processor'}"
[scorers.clip_score]
device = "cpu"
[geneval]
colors = "{tmp_path / 'colors.safetensors'}"
""")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        miro_cli.main(["weights", "check", str(tmp_path / "weights.toml")])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    expected = ["key t5: ", "holds no tokenizer (tokenizer.json or spiece.model)", "key vae: ", "is a file, but vae names a folder",
                "key scorers.pickscore.model_dir: ", "model.safetensors is not a safetensors file",
                "is a folder, but scorers.hpsv2.checkpoint names a file", "[scorers.clip_score] names no model_dir",
                "key geneval.colors: ", "colors.safetensors is not a safetensors file"]
    assert [e for e in expected if not any(e in line for line in lines)] == [], lines
    assert exit.value.code == 2 and err.startswith(f"error: {len(lines)} problem(s)") and err.count("\n") == 1 and len(lines) == 6


@pytest.mark.parametrize("content, expected", [
    ('[t5]\nsha256 = "00"\n', "[t5] names no path"),
    (bytes(range(256)) * 4, "is not text (it is not UTF-8)"),
    ("folder", "is a folder; pass the TOML file"),
])
def test_a_weights_file_that_names_nothing_or_is_not_toml_is_refused_by_every_command(content, expected, tmp_path: Path,
                                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "weights.toml"
    if content == "folder":
        weights.mkdir()
    elif isinstance(content, bytes):
        weights.write_bytes(content)
    else:
        weights.write_text(content)
    assert expected in refuse(miro_cli.main, ["weights", "check", str(weights)], tmp_path, capsys)
    assert expected in refuse(miro_cli.main, ["train", "--out", str(tmp_path / "run"), "--weights", str(weights), "--dry-run"], tmp_path, capsys)


STUDY_FILES = [  # (case, the study file's text, text the one line must hold)
    ("syntax-error", "def study(:\n    pass\n", "my_study.py, line 1: SyntaxError"),
    ("study-raises", "def study():\n    x = 1\n    raise ValueError('no such dataset')\n", "my_study.py, line 3, in study: ValueError: no such dataset"),
    ("import-raises", "import no_such_package\n", "my_study.py, line 1, in <module>: ModuleNotFoundError"),
    ("wrong-types", "from harness.study import Study\n\ndef study():\n    return Study(name=5, arms='x')\n",
     "2 fields of the wrong type: - study.name = 5 (int) must be str - study.arms = 'x' (str) must be a tuple of Arm"),
    ("wrong-config-type", "from dataclasses import replace\nfrom harness.study import Arm, Study\nfrom miro.presets import smoke\n\n"
                          "def study():\n    return Study('s', (Arm('a', replace(smoke(), optim=5)),), eval_steps=(1,))\n",
     "study.arms[0].config.optim = 5 (int) must be OptimConfig"),
]


def test_a_study_table_entry_that_is_not_a_function_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "my_study.py").write_text("STUDIES = {'main': 5}\n")
    err = refuse(sweep_cli.main, [f"{tmp_path / 'my_study.py'}:main", "--root", str(tmp_path / "runs"), "--dry-run"], tmp_path, capsys)
    assert "STUDIES['main'] is a int; it must be a function returning a Study" in err


@pytest.mark.parametrize("case", STUDY_FILES, ids=lambda c: c[0])
def test_a_study_file_whose_code_fails_is_named_by_its_file_and_line(case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, text, expected = case
    (tmp_path / "my_study.py").write_text(text)
    err = refuse(sweep_cli.main, [str(tmp_path / "my_study.py"), "--root", str(tmp_path / "runs"), "--dry-run"], tmp_path, capsys)
    assert expected in err and "harness" not in err.split(":")[0], err


def test_a_full_disk_while_writing_a_checkpoint_is_one_line_and_keeps_the_last_one(world: Path, tmp_path: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors import SafetensorError

    import miro.checkpoint
    from miro.checkpoint import load_checkpoint

    written = miro.checkpoint.save_file

    def fills_up(tensors: object, path: str) -> None:  # the disk is full by the second checkpoint, as safetensors says it
        if "step-0000004" in path:
            raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })')
        written(tensors, path)

    monkeypatch.setattr(miro.checkpoint, "save_file", fills_up)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        miro_cli.main(["train", "--preset", "smoke", "--out", str(tmp_path / "run"), "--data-root", str(world / "data"),
                       "--set", "optim.steps=4", "--set", "checkpoint_every=2"])
    err = capsys.readouterr().err.splitlines()[-1]
    assert exit.value.code == 2 and err.startswith("error: ") and "No space left on device" in err and "free disk space" in err
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step-0000002"]  # whole, nothing half-written beside
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "step-0000002").step == 2


def test_two_trainings_into_one_folder_are_refused_and_ctrl_c_ends_one_in_one_line(world: Path, tmp_path: Path,
                                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C: one line, status 130, the next run resumes; a writer killed with SIGKILL leaves no lock behind."""
    import signal
    import time

    out = tmp_path / "run"
    argv = ["train", "--preset", "smoke", "--out", str(out), "--data-root", str(world / "data"), "--set", "optim.steps=100000",
            "--set", "checkpoint_every=100000", "--set", "log_every=1"]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}

    def training() -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", "miro", *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # a test run in the background ignores it
        deadline = time.monotonic() + 300
        while not ((out / "log.jsonl").is_file() and (out / "log.jsonl").read_text()) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        return proc

    first = training()
    err = refuse(miro_cli.main, [*argv[:-6], "--set", "optim.steps=1"], world, capsys)  # (without a lock: done in a step)
    assert f"{out} is being written by miro train" in err and f"pid {first.pid}" in err
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 130 and "Traceback" not in stderr, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == "error: interrupted (Ctrl-C); run the same command again to go on (what was finished is kept)"
    (out / "log.jsonl").unlink()
    second = training()
    second.kill()  # SIGKILL: no handler runs, the operating system frees the lock
    second.wait()
    miro_cli.main([*argv[:-6], "--set", "optim.steps=1", "--set", "checkpoint_every=1"])  # (no checkpoint yet: a new config is taken)
    assert (out / "checkpoints" / "step-0000001").is_dir()
