"""SciScore: a CLIP fine-tuned for scientific images; same formula as PickScore, logit_scale.exp() * cos."""
from __future__ import annotations

from pathlib import Path

from miro.rewards.real.hf_clip import FOLDER_FILES, HFClipScorer, build_same_folder
from miro.rewards.real.sources import HubFolder

MODEL = HubFolder("Jialuo21/SciScore", FOLDER_FILES)


def build(
    model_dir: str | Path | None = None,
    processor_dir: str | Path | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    allow_download: bool = False,
) -> HFClipScorer:
    """Load SciScore from `model_dir`; the processor is read from the same folder unless `processor_dir` is given."""
    return build_same_folder("sciscore", "SciScore", MODEL, True, model_dir, processor_dir, device, dtype, allow_download)
