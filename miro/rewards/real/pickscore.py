"""PickScore v1: a CLIP-H fine-tuned on Pick-a-Pic preferences; score = logit_scale.exp() * cos (about 100 * cos).

The processor comes from a different repository than the weights (laion's CLIP-ViT-H-14), as in the
PickScore reference code.
"""
from __future__ import annotations

from pathlib import Path

from miro.rewards.real.hf_clip import FOLDER_FILES, HFClipScorer, build_hf_clip
from miro.rewards.real.runtime import make_runtime
from miro.rewards.real.sources import HubFolder, resolve

MODEL = HubFolder("yuvalkirstain/PickScore_v1", FOLDER_FILES)
PROCESSOR = HubFolder("laion/CLIP-ViT-H-14-laion2B-s32B-b79K", ("*.json", "*.txt"))


def build(
    model_dir: str | Path | None = None,
    processor_dir: str | Path | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    allow_download: bool = False,
) -> HFClipScorer:
    """Load PickScore from `model_dir` (PickScore_v1) and `processor_dir` (laion CLIP-ViT-H-14's processor files)."""
    runtime = make_runtime(device, dtype)
    model_path = resolve(model_dir, MODEL, "model_dir", allow_download)
    processor_path = resolve(processor_dir, PROCESSOR, "processor_dir", allow_download)
    return build_hf_clip("pickscore", "PickScore_v1", model_path, processor_path, True, 77, runtime)
