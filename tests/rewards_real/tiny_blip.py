"""A tiny ImageReward model: BERT vocabulary folder, med_config and a one-block ViT swapped in for ViT-L.

ImageReward hard-codes `BLIP_Pretrain(vit='large')` (300M parameters) and a 768-d MLP head, so the
fixture keeps BERT hidden 768 (one layer, small FFN, tiny vocabulary) and swaps BLIP's `create_vit`
for a one-block, 64-wide ViT with 32-pixel patches.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = "a red cube on table two cats asleep sofa watercolor of lighthouse at dusk the dog".split()
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
VOCAB = SPECIAL + WORDS + LETTERS + [f"##{letter}" for letter in LETTERS]
VISION_WIDTH = 64


def write_bert_vocab(folder: Path) -> Path:
    """A bert-uncased style tokenizer folder (vocab.txt + tokenizer_config.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 512}))
    return folder


def med_config() -> dict[str, Any]:
    """The real med_config.json's keys; sizes cut down except hidden 768, which the MLP head needs."""
    return {
        "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 768,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 64,
        "model_type": "bert",
        "num_attention_heads": 12,
        "num_hidden_layers": 1,
        "pad_token_id": 0,
        "type_vocab_size": 2,
        "vocab_size": len(VOCAB) + 2,  # BLIP adds [DEC] and [ENC]
        "encoder_width": VISION_WIDTH,
        "add_cross_attention": True,
    }


def tiny_create_vit(blip: ModuleType):
    """A replacement for BLIP's `create_vit(vit, image_size, ...)` returning a one-block ViT."""

    def create_vit(_vit: str, image_size: int, *_args: Any, **_kwargs: Any) -> tuple[Any, int]:
        encoder = blip.VisionTransformer(
            img_size=image_size, patch_size=32, embed_dim=VISION_WIDTH, depth=1, num_heads=2
        )
        return encoder, VISION_WIDTH

    return create_vit
