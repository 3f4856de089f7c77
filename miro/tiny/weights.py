"""`python -m miro weights tiny OUT`: every tiny model the real path uses, benchmark stand-ins, and OUT/weights.toml.

The weights file names T5, the VAE, six scorers (PickScore, SciScore, OpenAI CLIP, a CLIPModel as jina_clip,
HPSv2, the aesthetic predictor), GenEval's Mask2Former and colour classifier, GenEval's metadata and class names,
and PartiPrompts; `python -m miro weights check OUT/weights.toml` accepts it. ImageReward (its BLIP tower is
built at ViT-L size whatever the checkpoint) and VQAScore (t2v_metrics, its own environment) have no tiny
stand-in here.
"""
from __future__ import annotations

from pathlib import Path

from miro.errors import MiroError
from miro.files import atomic_path
from miro.tiny.benchmarks import existing_benchmarks, write_benchmarks
from miro.tiny.clip import TINY_HPS_CONFIG, write_model, write_processor
from miro.tiny.models import (
    save_tiny_aesthetic,
    save_tiny_hps,
    save_tiny_mask2former,
    save_tiny_open_clip,
    save_tiny_t5,
    save_tiny_vae,
)
from miro.weights_file import FILE_NAME as WEIGHTS
from miro.weights_file import render

HEADER = """Tiny random models in the real file formats, written by: python -m miro weights tiny
For trying the real path offline (commands, files, studies); scores and images from them mean nothing."""
CLIP_SCORERS = {"pickscore": 2, "sciscore": 4, "clip_score": 3, "jina_clip": 5}  # scorer -> seed of its CLIPModel


def tiny_tables(root: Path, benchmarks: Path | None = None, fid_reference: Path | None = None) -> dict[str, dict[str, object]]:
    """Write every tiny model under `root` and return the weights file's tables naming them."""
    files = existing_benchmarks(benchmarks) if benchmarks else write_benchmarks(root / "benchmarks")
    classes = len([n for n in files["geneval.class_names"].read_text().splitlines() if n.strip()])
    processor = write_processor(root / "clip_processor")
    hps, hps_config = save_tiny_hps(root / "hps")
    colors, colors_config = save_tiny_open_clip(root / "color_clip", "tiny-color-clip", TINY_HPS_CONFIG, seed=0)
    tables: dict[str, dict[str, object]] = {"t5": {"path": save_tiny_t5(root / "t5")}, "vae": {"path": save_tiny_vae(root / "vae")}}
    for name, seed in CLIP_SCORERS.items():
        tables[f"scorers.{name}"] = {"model_dir": write_model(root / name, seed=seed), "processor_dir": processor}
    tables["scorers.hpsv2"] = {"checkpoint": hps, "model_name": hps_config}
    tables["scorers.aesthetic"] = dict(save_tiny_aesthetic(root / "aesthetic"))
    tables["geneval"] = {"detector": save_tiny_mask2former(root / "mask2former", num_labels=classes),
                         "metadata": files["geneval.metadata"], "class_names": files["geneval.class_names"],
                         "colors": colors, "colors_model": colors_config, "threshold": 0.0}
    tables["benchmarks"] = {"parti": files["benchmarks.parti"], **({"fid_reference": fid_reference} if fid_reference else {})}
    return tables


def write_tiny_weights(out: Path, benchmarks: Path | None = None, fid_reference: Path | None = None) -> Path:
    """Write the tiny models and OUT/weights.toml (paths absolute); a folder that already holds them is kept as it is
    (the same command run again does nothing). `benchmarks`: a folder of the real GenEval and PartiPrompts files to
    name instead of the stand-ins; `fid_reference`: a folder of images to name as the FID reference."""
    out = Path(out).expanduser().absolute()
    if (out / WEIGHTS).is_file():
        return out / WEIGHTS
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MiroError(f"{out} exists and holds no {WEIGHTS}; pass a new folder (weights tiny writes a whole folder)")
    out.parent.mkdir(parents=True, exist_ok=True)
    given = [Path(p).expanduser().absolute() if p else None for p in (benchmarks, fid_reference)]
    with atomic_path(out) as tmp:  # a whole folder or nothing: an interrupted run leaves no half-written weights
        tables = tiny_tables(tmp, *given)
        moved = {s: {k: out / v.relative_to(tmp) if isinstance(v, Path) and v.is_relative_to(tmp) else v for k, v in t.items()}
                 for s, t in tables.items()}
        (tmp / WEIGHTS).write_text(render(moved, HEADER, {
            "geneval.threshold": "the tiny random detector's scores are low: keep every detection, so the rules see objects"}))
    return out / WEIGHTS
