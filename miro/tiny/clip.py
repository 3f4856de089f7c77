"""Tiny CLIP models in their real formats: transformers CLIPModel folders with the real CLIP tokenizer, and
open_clip configs registered by name.

The real towers (ViT-H-14 for HPSv2 and PickScore, ViT-L-14 for the aesthetic predictor and GenEval's colour
classifier) take minutes to build on two cores; these keep the real code paths (config registry, model class,
transforms, tokenizer) with 1 to 2M parameters. Widths are multiples of 64 where OpenAI's
`clip.model.build_model` infers heads. The tokenizer files (vocab.json, merges.txt) are rebuilt from the BPE
vocabulary bundled in open_clip, which gives the same tokens as the Hub's CLIP tokenizer.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import torch

TINY_HPS = "tiny-hps"
TINY_HPS_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
# The aesthetic head reads 768-d ViT-L/14 embeddings, so the tiny tower keeps embed_dim 768.
TINY_AESTHETIC = "tiny-aesthetic-quickgelu"
TINY_AESTHETIC_CONFIG: dict[str, Any] = {
    "embed_dim": 768,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 224, "layers": 1, "width": 64, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1},
}
_MERGES = 49152 - 256 - 2  # open_clip and OpenAI CLIP keep this many merges of the BPE file


def write_config(folder: Path, name: str, config: dict[str, Any]) -> Path:
    """Write `name`.json where open_clip's `add_model_config` (upstream or hpsv2's copy) can register it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(config))
    return path


def randomise(model: torch.nn.Module, seed: int, scale: float = 0.1) -> None:
    """Add N(0, scale) to every parameter, so zero-initialised heads and biases carry signal too."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)


def write_processor(folder: Path) -> Path:
    """Save a CLIPProcessor (default 224 px OpenAI image processor + the CLIP BPE tokenizer) to `folder`."""
    from transformers import CLIPImageProcessor, CLIPProcessor, CLIPTokenizer
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    from miro.rewards.real.hpsv2_compat import open_clip_bpe

    merges = gzip.open(open_clip_bpe()).read().decode("utf-8").split("\n")[1 : _MERGES + 1]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    files = folder / "bpe"
    files.mkdir(parents=True)
    (files / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
    (files / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer(str(files / "vocab.json"), str(files / "merges.txt"))
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(folder)
    return folder


def write_model(folder: Path, seed: int, text_positions: int = 77) -> Path:
    """Save a 1-layer, 32-wide CLIPModel with the real 49408-token vocabulary (safetensors)."""
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config={"vocab_size": 49408, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": text_positions},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 224, "patch_size": 32},
        projection_dim=16,
    )
    model = CLIPModel(config)
    randomise(model, seed)
    model.save_pretrained(folder)
    return folder
