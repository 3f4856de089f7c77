"""CLIPScore with OpenAI CLIP ViT-L/14: the paper's held-out metric, 100 * cos as in torchmetrics.

Per image this is torchmetrics' per-sample value; torchmetrics' CLIPScore then reports
max(mean, 0). One difference on captions over 77 tokens: torchmetrics cuts the token ids after
tokenising (dropping the end-of-text token CLIP pools at) while this scorer truncates in the tokenizer,
which keeps it, as CLIP was trained.

Not the released code's "clip_score" reward key, which is JINA CLIP v2 (see `jina_clip` and `prescale`).
"""
from __future__ import annotations

from pathlib import Path

from miro.rewards.real.hf_clip import FOLDER_FILES, HFClipScorer, build_same_folder
from miro.rewards.real.sources import HubFolder

MODEL = HubFolder("openai/clip-vit-large-patch14", FOLDER_FILES)


def build(
    model_dir: str | Path | None = None,
    processor_dir: str | Path | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    allow_download: bool = False,
) -> HFClipScorer:
    """Load OpenAI CLIP from `model_dir`; the processor is read from the same folder unless `processor_dir` is given."""
    return build_same_folder("clip_score", "openai/clip-vit-large-patch14", MODEL, False, model_dir, processor_dir, device, dtype, allow_download)
