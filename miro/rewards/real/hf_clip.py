"""scale * cos(image, text) with a transformers CLIPModel and CLIPProcessor read from local folders.

Shared by pickscore and sciscore (scale = the model's learned logit_scale.exp(), as in the PickScore
reference code) and by clip_score and jina_clip (scale = 100, as torchmetrics' CLIPScore). Features
come from `model(...)`'s `image_embeds` / `text_embeds` (already L2-normalised), which transformers 4.x
and 5.x both return as tensors, unlike `get_image_features` in 5.x. transformers reads the weights as
safetensors, or a .bin with torch.load(weights_only=True).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from miro.errors import MiroError
from miro.rewards.base import Scorer, ScorerInfo
from miro.rewards.real.details import scorer_details
from miro.rewards.real.images import check_batch, to_pil_images
from miro.rewards.real.runtime import Runtime, make_runtime
from miro.rewards.real.sources import HubFolder, existing_path, resolve
from miro.rewards.real.weights import listed_keys, sha256_folder

# What a model folder needs; Hub CLIP repositories also hold TF and Flax copies of the weights.
FOLDER_FILES = ("*.json", "*.txt", "*.safetensors", "pytorch_model*.bin")
PREPROCESSING = (
    "CLIPProcessor from the processor folder: resize shortest side bicubic (PIL), centre crop, rescale, "
    "normalise with its mean/std; text padded, truncated to {tokens} tokens"
)


class HFClipScorer(Scorer):
    """score = scale * cos(image_embeds, text_embeds) for each (image, prompt) pair."""

    def __init__(
        self, model: Any, processor: Any, learned_scale: bool, max_text_tokens: int, runtime: Runtime, info: ScorerInfo
    ) -> None:
        self._model = model  # transformers CLIPModel
        self._processor = processor  # transformers CLIPProcessor
        self._learned_scale = learned_scale
        self._max_text_tokens = max_text_tokens
        self._runtime = runtime
        self.info = info
        self.preprocessing_key = "clip-image-processor:" + json.dumps(processor.image_processor.to_dict(), sort_keys=True, default=str)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> the processor's pixel_values (B, 3, S, S); shared by CLIP scorers with one processor."""
        return self._processor(images=to_pil_images(images, [""] * len(images)), return_tensors="pt")["pixel_values"]

    @torch.inference_mode()
    def score_prepared(self, prepared: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        text = self._processor(text=list(prompts), padding=True, truncation=True, max_length=self._max_text_tokens,
                               return_tensors="pt")
        inputs = {"input_ids": text["input_ids"], "attention_mask": text["attention_mask"], "pixel_values": prepared}
        with self._runtime.autocast():
            out = self._model(**{k: v.to(self._runtime.device) for k, v in inputs.items()})
        cosine = (out.image_embeds.float() * out.text_embeds.float()).sum(-1)  # (B,)
        scale = self._model.logit_scale.exp().float() if self._learned_scale else 100.0
        return (scale * cosine).cpu()

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        check_batch(images, prompts)
        return self.score_prepared(self.prepare(images), prompts)


def _load_model(model_dir: Path) -> Any:
    """CLIPModel.from_pretrained, refusing non-CLIP folders and any missing, unexpected or misshaped weight."""
    from transformers import CLIPModel

    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise MiroError(f"{model_dir} has no config.json; expected a transformers CLIPModel folder")
    model_type = json.loads(config_file.read_text()).get("model_type")
    if model_type != "clip":
        raise MiroError(
            f'{model_dir} holds model_type "{model_type}", not "clip"; this scorer loads transformers CLIPModel '
            "folders only (jina-clip-v2 needs trust_remote_code and its own scorer)"
        )
    try:
        model, loading = CLIPModel.from_pretrained(str(model_dir), output_loading_info=True)
    except (OSError, RuntimeError, ValueError) as err:
        raise MiroError(f"cannot load {model_dir} as a CLIPModel: {str(err).splitlines()[0]}") from err
    problems = [
        listed_keys(kind.replace("_", " "), map(str, keys))
        for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")
        if (keys := loading.get(kind, []))
    ]
    if problems:
        raise MiroError(f"{model_dir} does not fit CLIPModel: {'; '.join(problems)}")
    return model


def build_hf_clip(
    name: str,
    version: str,
    model_dir: Path,
    processor_dir: Path,
    learned_scale: bool,
    max_text_tokens: int | None,
    runtime: Runtime,
) -> HFClipScorer:
    """Load the model and processor folders once and wrap them as the scorer `name`.

    `max_text_tokens` None keeps as many prompt tokens as the model has text positions.
    """
    from transformers import CLIPProcessor

    model = _load_model(model_dir)
    positions = model.config.text_config.max_position_embeddings
    max_text_tokens = positions if max_text_tokens is None else max_text_tokens
    if not 1 <= max_text_tokens <= positions:
        raise MiroError(f"max_text_tokens={max_text_tokens} but {model_dir} embeds at most {positions} text positions")
    try:
        processor = CLIPProcessor.from_pretrained(str(processor_dir))
    except (OSError, ValueError) as err:
        raise MiroError(f"cannot load {processor_dir} as a CLIPProcessor: {str(err).splitlines()[0]}") from err
    scale = "logit_scale.exp()" if learned_scale else "100"
    info = ScorerInfo(
        name=name,
        version=version,
        score_range=(-100.0, 100.0),
        details=scorer_details(
            runtime,
            {"model_dir": sha256_folder(model_dir), "processor_dir": sha256_folder(processor_dir)},
            PREPROCESSING.format(tokens=max_text_tokens),
            ("transformers",),
            formula=f"{scale} * cos(image_embeds, text_embeds)",
        ),
    )
    return HFClipScorer(model.to(runtime.device).eval(), processor, learned_scale, max_text_tokens, runtime, info)


def build_same_folder(name: str, version: str, model: HubFolder, learned_scale: bool, model_dir: str | Path | None,
                      processor_dir: str | Path | None, device: str, dtype: str, allow_download: bool) -> HFClipScorer:
    """A CLIP scorer whose processor files sit beside its weights in `model_dir` (unless `processor_dir` is given)."""
    runtime = make_runtime(device, dtype)
    model_path = resolve(model_dir, model, "model_dir", allow_download)
    processor_path = model_path if processor_dir is None else existing_path(processor_dir, "processor_dir", model.how_to_get())
    return build_hf_clip(name, version, model_path, processor_path, learned_scale, 77, runtime)
