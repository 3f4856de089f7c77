"""Tiny random models in the real file formats, written where a weights file can name them.

Every model is saved exactly as its real counterpart is published (save_pretrained folders, an
HPS_v2*_compressed.pt, open_clip state dicts beside an open_clip config JSON), so commands load them through
the real loading code in a fresh process, as they would load the released weights.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import torch
from PIL import Image
from rewards_real.tiny_hf_clip import write_model, write_processor
from rewards_real.tiny_open_clip import TINY_HPS, TINY_HPS_CONFIG, randomise

WORDS = ["<pad>", "</s>", "<unk>", "a", "photo", "of", "red", "green", "blue", "circle", "square"]
COLORS = {"red": (230, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 230)}


def save_tiny_vae(path: Path, scaling_factor: float = 0.13025, seed: int = 0) -> Path:
    """An AutoencoderKL with 2 levels (downsampling 2) and 4 latent channels, like the SDXL VAE's layout."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                  block_out_channels=(8, 16), latent_channels=4, norm_num_groups=4, sample_size=16,
                  scaling_factor=scaling_factor).save_pretrained(path)
    return path


def save_tiny_t5(path: Path) -> Path:
    """A T5EncoderModel with a WordLevel tokenizer (PreTrainedTokenizerFast) in one folder, as FLAN-T5 is laid out."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    torch.manual_seed(0)
    config = T5Config(vocab_size=len(WORDS), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2,
                      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    T5EncoderModel(config).save_pretrained(path)
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>").save_pretrained(path)
    return path


def save_tiny_mask2former(path: Path) -> Path:
    """A Mask2Former (Swin backbone, 80 COCO classes, 5 queries) with its image processor, via save_pretrained."""
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor, SwinConfig

    torch.manual_seed(0)
    swin = SwinConfig(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4,
                      out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(backbone_config=swin, hidden_dim=32, feature_size=32, mask_feature_size=32,
                               encoder_layers=1, decoder_layers=2, num_queries=5, encoder_feedforward_dim=32,
                               dim_feedforward=32, num_attention_heads=2, num_labels=80)
    Mask2FormerForUniversalSegmentation(config).save_pretrained(path)
    Mask2FormerImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}, size_divisor=32).save_pretrained(path)
    return path


def save_tiny_hps(folder: Path) -> tuple[Path, Path]:
    """(HPS_v2.1_compressed.pt saved as torch.save({'state_dict': ...}), its open_clip config JSON)."""
    from miro.rewards.real.hpsv2_compat import hpsv2_open_clip

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"{TINY_HPS}.json"
    config.write_text(json.dumps(TINY_HPS_CONFIG))
    open_clip = hpsv2_open_clip()
    open_clip.add_model_config(config)
    model = open_clip.create_model(TINY_HPS, None, precision="amp", output_dict=True)
    randomise(model, seed=1)
    torch.save({"state_dict": model.state_dict()}, folder / "HPS_v2.1_compressed.pt")
    return folder / "HPS_v2.1_compressed.pt", config


def save_tiny_color_clip(folder: Path) -> tuple[Path, Path]:
    """(open_clip state dict .pt, its config JSON): the colour classifier's CLIP in open_clip's formats."""
    import open_clip

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "tiny-color-clip.json"
    config.write_text(json.dumps(TINY_HPS_CONFIG))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    torch.save(open_clip.create_model("tiny-color-clip").state_dict(), folder / "open_clip_model.pt")
    return folder / "open_clip_model.pt", config


def write_image_folder(root: Path, count: int) -> Path:
    """An img2dataset-style folder: 000000i.png (32 x 32, a coloured block) + 000000i.txt captions."""
    root.mkdir(parents=True, exist_ok=True)
    names = list(COLORS)
    for i in range(count):
        color = names[i % 3]
        image = Image.new("RGB", (32, 32), (128, 128, 128))
        image.paste(COLORS[color], (4 + i % 8, 6, 20 + i % 8, 22) if i % 2 else (8, 8, 24, 24))
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        (root / f"{i:09d}.png").write_bytes(buffer.getvalue())
        (root / f"{i:09d}.txt").write_text(f"a photo of a {color} {'circle' if i % 2 else 'square'}")
    return root


def write_all(root: Path) -> dict[str, Path]:
    """Every tiny model the real path uses, under `root`; returns the paths by weights-file role."""
    hps, hps_config = save_tiny_hps(root / "hps")
    colors, colors_config = save_tiny_color_clip(root / "color_clip")
    processor = write_processor(root / "clip_processor")
    return {
        "t5": save_tiny_t5(root / "t5"), "vae": save_tiny_vae(root / "vae"),
        "pickscore": write_model(root / "pickscore", seed=2), "clip_score": write_model(root / "clip", seed=3),
        "processor": processor, "hps": hps, "hps_config": hps_config,
        "detector": save_tiny_mask2former(root / "mask2former"), "colors": colors, "colors_config": colors_config,
    }
