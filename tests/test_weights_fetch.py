"""`python -m miro weights fetch OUT` against a local server that answers as the Hugging Face Hub and GitHub do
(tests/hub_mimic.py), serving the tiny models of `weights tiny` under the real repositories' names and the real
GenEval and PartiPrompts files: every file lands in OUT, is checked against the source's record, and the weights
file it writes passes `weights check`; a second run downloads nothing; a file whose bytes differ from the Hub's
record is refused."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hub_mimic import Sources, serving
from real_study import BENCHMARKS

from miro import weights_file
from miro.errors import MiroError
from miro.fetch import NOT_FETCHED, fetch_all
from miro.tiny.weights import write_tiny_weights

ROOT = Path(__file__).resolve().parents[1]


def checkpoint(state: dict) -> bytes:
    """A state dict as torch.save writes it (ImageReward.pt's format)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Sources:
    """The tiny models published as the real repositories, and the benchmark files at their pinned URLs."""
    from miro.benchmark_files import GENEVAL_FILES, PARTI_URL
    from miro.rewards.real.aesthetic import HEAD

    if not (BENCHMARKS / "partiprompts" / "PartiPrompts.tsv").is_file():
        pytest.skip(f"the benchmark files are not under {BENCHMARKS}")
    tiny = write_tiny_weights(tmp_path_factory.mktemp("tiny") / "w", benchmarks=BENCHMARKS).parent
    clip = {**files(tiny / "clip_score"), **files(tiny / "clip_processor")}
    repos = {
        "google/flan-t5-xl": files(tiny / "t5"), "stabilityai/sdxl-vae": files(tiny / "vae"),
        "yuvalkirstain/PickScore_v1": files(tiny / "pickscore"), "laion/CLIP-ViT-H-14-laion2B-s32B-b79K": files(tiny / "clip_processor"),
        "Jialuo21/SciScore": clip, "openai/clip-vit-large-patch14": {**clip, "pytorch_model.bin": b"the same weights, pickled"},
        "xswu/HPSv2": {"HPS_v2.1_compressed.pt": (tiny / "hps" / "HPS_v2.1_compressed.pt").read_bytes(), "HPS_v2_compressed.pt": b"v2.0"},
        "THUDM/ImageReward": {"ImageReward.pt": checkpoint({"mlp.layers.0.weight": torch.zeros(1)}), "med_config.json": b"{}"},
        "timm/vit_large_patch14_clip_224.openai": {"open_clip_model.safetensors": (tiny / "color_clip" / "open_clip_model.safetensors").read_bytes()},
        "facebook/mask2former-swin-small-coco-instance": files(tiny / "mask2former"),
    }
    web = {HEAD.url: (tiny / "aesthetic" / "sac+logos+ava1-l14-linearMSE.pth").read_bytes(),
           PARTI_URL: (BENCHMARKS / "partiprompts" / "PartiPrompts.tsv").read_bytes(),
           **{url: (BENCHMARKS / "geneval" / name).read_bytes() for name, (url, _) in GENEVAL_FILES.items()}}
    return Sources(repos, web)


@pytest.fixture
def online_hub(monkeypatch):
    """The Hub client online for one test: the suite runs it offline, and huggingface_hub caches a session (offline
    adapters mounted) per thread, so the cache is emptied on the way in and out."""
    import huggingface_hub.constants
    from huggingface_hub.utils import reset_sessions

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    reset_sessions()
    yield
    monkeypatch.undo()
    reset_sessions()


def through(base: str):
    return lambda url: f"{base}/web/{url.removeprefix('https://')}"


def test_every_file_is_fetched_verified_and_named_in_a_weights_file_that_checks(sources, tmp_path, online_hub, capsys):
    with serving(sources) as base:
        written = fetch_all(tmp_path / "w", endpoint=base, mirror=through(base))
        first = capsys.readouterr().out
        sources.requests.clear()
        assert fetch_all(tmp_path / "w", endpoint=base, mirror=through(base)) == written
    again = capsys.readouterr().out
    weights = weights_file.read(written)
    assert weights_file.check(written) == []
    assert set(weights.entries) == {"t5", "vae", "geneval.detector", "geneval.metadata", "geneval.class_names", "geneval.colors",
                                    "benchmarks.parti"}
    assert set(weights.scorers) == {"pickscore", "sciscore", "clip_score", "hpsv2", "aesthetic", "image_reward"}
    assert weights.entries["t5"].path == str(tmp_path / "w" / "flan-t5-xl") and weights.geneval["colors_model"] == "ViT-L-14"
    assert not (tmp_path / "w" / "clip-vit-large-patch14" / "pytorch_model.bin").exists()  # safetensors were there
    assert "checked against the Hub's record" in first and "sha256 as pinned" in first
    assert all(f"not fetched: {key}" in first for key in NOT_FETCHED)
    assert again.count("fetched and verified before, unchanged") == 16 and sources.requests == []
    ledger = json.loads((tmp_path / "w" / "fetched.json").read_text())
    assert ledger["flan-t5-xl"]["revision"] == sources.commit("google/flan-t5-xl")


def test_bytes_that_differ_from_the_hubs_record_are_refused_and_the_rest_kept(sources, tmp_path, online_hub, capsys):
    sources.lies.add(("stabilityai/sdxl-vae", "diffusion_pytorch_model.safetensors"))
    try:
        with serving(sources) as base, pytest.raises(MiroError, match="1 of 2 downloads failed .* run the same command again"):
            fetch_all(tmp_path / "w", only=("t5", "vae"), endpoint=base)
    finally:
        sources.lies.clear()
    assert "downloaded bytes do not match the Hub's record" in capsys.readouterr().out
    assert set(weights_file.read(tmp_path / "w" / "weights.toml").entries) == {"t5"}
    assert not (tmp_path / "w" / "sdxl-vae" / "diffusion_pytorch_model.safetensors").exists()
    with pytest.raises(MiroError, match='--only vea: no such key \\(did you mean "vae"'):
        fetch_all(tmp_path / "w", only=("vea",))


def test_the_command_fetches_from_a_hub_mirror(sources, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf")}
    with serving(sources) as base:
        done = subprocess.run([sys.executable, "-m", "miro", "weights", "fetch", str(tmp_path / "w"), "--only", "t5", "--only",
                               "geneval.detector", "--endpoint", base], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(tmp_path / "w" / "weights.toml")
    assert set(weights_file.read(tmp_path / "w" / "weights.toml").entries) == {"t5", "geneval.detector"}
