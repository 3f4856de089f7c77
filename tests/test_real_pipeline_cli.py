"""From an image folder to an evaluated checkpoint with the command line only, as a user on an offline node.

Tiny random models in the real file formats (`python -m miro weights tiny`, with the real GenEval and
PartiPrompts files) stand in for FLAN-T5, the SDXL VAE, PickScore, OpenAI CLIP, HPSv2, GenEval's Mask2Former
and its colour classifier; one weights file names them all, and `python -m miro example-data` writes the image
folder. Every step is a subprocess running the documented command (docs/data.md).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from real_study import BENCHMARKS

ROOT = Path(__file__).resolve().parents[1]
SCORERS = ("pickscore", "clip_score", "hpsv2")
RIN = ["model.backbone=rin", "model.image_size=16", "model.channels=4", "model.patch_size=4", "model.width=32",
       "model.heads=2", "model.cond_heads=2", "model.data_dim=32", "model.num_latents=8", "model.rin_blocks=1",
       "model.rin_layers_per_block=1", "model.read_write_heads=2", "model.text_registers=2", "model.cond_blocks=1"]


def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    env.pop("MIRO_WEIGHTS", None)
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    if ok:
        assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    if not (BENCHMARKS / "geneval" / "evaluation_metadata.jsonl").is_file():
        pytest.skip(f"benchmark data not found at {BENCHMARKS}")
    root = tmp_path_factory.mktemp("real")
    run("-m", "miro", "example-data", str(root / "data"), "--samples", "12", "--format", "folder")
    written = run("-m", "miro", "weights", "tiny", str(root / "weights"), "--benchmarks", str(BENCHMARKS),
                  "--fid-reference", str(root / "data"))
    assert written.stdout.strip() == str(root / "weights" / "weights.toml")
    return root


def test_data_to_evaluated_checkpoint(workspace):
    w, data, ann, feats, run_dir = (str(workspace / n) for n in ("weights/weights.toml", "data", "ann", "features", "run"))
    assert "all present and readable" in run("-m", "miro", "weights", "check", w).stdout
    scorers = [a for s in SCORERS for a in ("--scorer", s)]
    first = run("-m", "miro", "annotate", "--source", "folder", "--path", data, "--weights", w, *scorers, "--out", ann,
                "--shard", "0/2", "--batch-size", "4")
    assert "shard 0/2 done" in first.stdout and not (workspace / "ann" / "annotations.parquet").exists()
    second = run("-m", "miro", "annotate", "--source", "folder", "--path", data, "--weights", w, *scorers, "--out", ann,
                 "--shard", "1/2", "--batch-size", "4")
    assert "correlations" in second.stdout  # the last shard assembled the annotation
    table = pq.read_table(workspace / "ann" / "annotations.parquet").to_pandas()
    assert len(table) == 12 and all((table[f"{s}__status"] == "ok").all() for s in SCORERS)
    assert "pickscore (8 bins)" in run("-m", "miro", "bins", ann, "--rewards", ",".join(SCORERS), "--bins", "8").stdout

    encoded = run("-m", "miro", "precompute", "--source", "folder", "--path", data, "--weights", w, "--out", feats,
                  "--resolution", "32", "--max-tokens", "8")
    assert "the shard holds 12, failed 0" in encoded.stderr
    assert (workspace / "features" / "store.json").is_file() and (workspace / "features" / "latent_stats.json").is_file()

    sets = [f"--set={s}" for s in [
        "data.source=folder", f"data.path={data}", f"data.annotations={ann}", f"data.features={feats}",
        "data.resolution=32", "text.encoder=t5", "text.max_tokens=8", "latents.space=vae", f"rewards.names={','.join(SCORERS)}",
        "rewards.scheme=tokens", "rewards.bins=8", "optim.steps=3", "optim.batch_size=4", "checkpoint_every=3", *RIN]]
    trained = run("-m", "miro", "train", "--preset", "smoke", "--out", run_dir, "--weights", w, *sets)
    assert "step-0000003" in trained.stdout
    config = json.loads((workspace / "run" / "config.json").read_text())
    assert config["rewards"]["names"] == list(SCORERS) and config["text"]["path"].endswith("t5")

    common = ["-m", "harness.evaluation", "--checkpoint", run_dir, "--weights", w, "--samples", "2", "--steps", "2",
              "--batch-size", "8", "--no-progress"]
    parti = run(*common, "--out", str(workspace / "eval-parti"), "--prompts", "parti", "--limit", "3", "--scorers", *SCORERS)
    metrics = json.loads(parti.stdout)["metrics"]
    assert set(SCORERS) <= metrics.keys() and "fid" in metrics  # the reference comes from the weights file
    geneval = run(*common, "--out", str(workspace / "eval-geneval"), "--prompts", "geneval", "--limit", "6",
                  "--reference", "none", "--geneval-threshold", "0.0")
    metrics = json.loads(geneval.stdout)["metrics"]
    assert 0 <= metrics["geneval"]["value"] <= 1 and set(SCORERS) <= metrics.keys()  # scorers default to the weights file's
    rows = [json.loads(line) for line in (workspace / "eval-geneval" / "geneval.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and len({r["tag"] for r in rows}) == 6  # --limit 6 took one prompt per task
