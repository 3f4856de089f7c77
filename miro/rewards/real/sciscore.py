"""SciScore: a CLIP fine-tuned for scientific images; same formula as PickScore, logit_scale.exp() * cos."""
from __future__ import annotations

from pathlib import Path

from miro.rewards.real.hf_clip import FOLDER_FILES, HFClipScorer, build_hf_clip
from miro.rewards.real.runtime import make_runtime
from miro.rewards.real.sources import HubFolder, existing_path, resolve

MODEL = HubFolder("Jialuo21/SciScore", FOLDER_FILES)


def build(
    model_dir: str | Path | None = None,
    processor_dir: str | Path | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    allow_download: bool = False,
) -> HFClipScorer:
    """Load SciScore from `model_dir`; the processor is read from the same folder unless `processor_dir` is given."""
    runtime = make_runtime(device, dtype)
    model_path = resolve(model_dir, MODEL, "model_dir", allow_download)
    processor_path = model_path if processor_dir is None else existing_path(processor_dir, "processor_dir", MODEL.how_to_get())
    return build_hf_clip("sciscore", "SciScore", model_path, processor_path, True, 77, runtime)
