"""A tiny transformers CLIPModel folder and a CLIPProcessor folder with the real CLIP tokenizer.

The tokenizer files (vocab.json, merges.txt) are rebuilt from the BPE vocabulary bundled in open_clip,
which gives the same tokens as the Hub's CLIP tokenizer, so prompts tokenise as in the real models.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

from miro.rewards.real.hpsv2_compat import open_clip_bpe

from .tiny_open_clip import randomise

_MERGES = 49152 - 256 - 2  # open_clip and OpenAI CLIP keep this many merges of the BPE file


def write_processor(folder: Path) -> Path:
    """Save a CLIPProcessor (default 224 px OpenAI image processor + the CLIP BPE tokenizer) to `folder`."""
    from transformers import CLIPImageProcessor, CLIPProcessor, CLIPTokenizer
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

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
        text_config={
            "vocab_size": 49408,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": text_positions,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 224,
            "patch_size": 32,
        },
        projection_dim=16,
    )
    model = CLIPModel(config)
    randomise(model, seed)
    model.save_pretrained(folder)
    return folder
