"""Tiny random models, each saved exactly as its real counterpart is published (save_pretrained folders, an
HPS_v2.1_compressed.pt, open_clip state dicts beside an open_clip config JSON, the aesthetic head's .pth), so
commands load them through the real loading code in a fresh process, as they would load the released weights.
"""
from __future__ import annotations

from pathlib import Path

import torch

from miro.tiny.clip import TINY_AESTHETIC, TINY_AESTHETIC_CONFIG, TINY_HPS, TINY_HPS_CONFIG, randomise, write_config

# the tiny T5's word-level vocabulary: the shapes world's captions and GenEval's prompt words tokenise whole
WORDS = ["<pad>", "</s>", "<unk>", "a", "an", "photo", "of", "and", "the", "red", "green", "blue", "yellow", "orange",
         "purple", "pink", "brown", "black", "white", "circle", "square", "triangle", "diamond", "circles", "squares",
         "triangles", "diamonds", "two", "three", "four", "left", "right", "above", "below"]


def save_tiny_vae(path: Path, scaling_factor: float = 0.13025, seed: int = 0) -> Path:
    """An AutoencoderKL with 2 levels (downsampling 2) and 4 latent channels, like the SDXL VAE's layout."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                  block_out_channels=(8, 16), latent_channels=4, norm_num_groups=4, sample_size=16,
                  scaling_factor=scaling_factor).save_pretrained(path)  # type: ignore[attr-defined]  # a ModelMixin method
    return path


def save_tiny_t5(path: Path, width: int = 16) -> Path:
    """A T5EncoderModel (`width` wide) with a WordLevel tokenizer (PreTrainedTokenizerFast) in one folder, as FLAN-T5
    is laid out."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    torch.manual_seed(0)
    config = T5Config(vocab_size=len(WORDS), d_model=width, d_kv=4, d_ff=32, num_layers=1, num_heads=2,
                      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    T5EncoderModel(config).save_pretrained(path)
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>").save_pretrained(path)
    return path


def save_tiny_mask2former(path: Path, num_labels: int = 80) -> Path:
    """A Mask2Former (Swin backbone, `num_labels` classes as COCO's 80, 5 queries) with its image processor."""
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor, SwinConfig

    torch.manual_seed(0)
    swin = SwinConfig(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4,
                      out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(backbone_config=swin,  # type: ignore[arg-type]  # a config object is accepted too hidden_dim=32, feature_size=32, mask_feature_size=32,
                               encoder_layers=1, decoder_layers=2, num_queries=5, encoder_feedforward_dim=32,
                               dim_feedforward=32, num_attention_heads=2, num_labels=num_labels)
    Mask2FormerForUniversalSegmentation(config).save_pretrained(path)
    Mask2FormerImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}, size_divisor=32).save_pretrained(path)
    return path


def save_tiny_hps(folder: Path) -> tuple[Path, Path]:
    """(HPS_v2.1_compressed.pt saved as torch.save({'state_dict': ...}), its open_clip config JSON)."""
    from miro.rewards.real.hpsv2_compat import hpsv2_open_clip

    config = write_config(folder, TINY_HPS, TINY_HPS_CONFIG)
    open_clip = hpsv2_open_clip()
    open_clip.add_model_config(config)
    model = open_clip.create_model(TINY_HPS, None, precision="amp", output_dict=True)
    randomise(model, seed=1)
    torch.save({"state_dict": model.state_dict()}, folder / "HPS_v2.1_compressed.pt")
    return folder / "HPS_v2.1_compressed.pt", config


def save_tiny_open_clip(folder: Path, name: str, config: dict, seed: int) -> tuple[Path, Path]:
    """(open_clip_model.safetensors, its config JSON): a CLIP tower in the format timm's Hub copies of OpenAI's
    CLIP publish (the aesthetic predictor's tower, GenEval's colour classifier)."""
    import open_clip
    from safetensors.torch import save_file

    path = write_config(folder, name, config)
    open_clip.add_model_config(path)
    model = open_clip.create_model(name)
    randomise(model, seed)
    # OpenAI released its CLIP in float16: tiny weights float16 represents exactly, as in the real file
    state = {k: v.half().float().contiguous() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return folder / "open_clip_model.safetensors", path


def save_tiny_aesthetic_head(folder: Path) -> Path:
    """The aesthetic MLP head saved as a plain state dict, as sac+logos+ava1-l14-linearMSE.pth is published."""
    from miro.rewards.real.aesthetic import AestheticHead

    head = AestheticHead(TINY_AESTHETIC_CONFIG["embed_dim"])
    randomise(head, seed=7)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(head.state_dict(), folder / "sac+logos+ava1-l14-linearMSE.pth")
    return folder / "sac+logos+ava1-l14-linearMSE.pth"


def save_tiny_aesthetic(folder: Path) -> dict[str, Path]:
    """The aesthetic predictor's files: head, CLIP tower, and the tower's open_clip config."""
    clip, config = save_tiny_open_clip(folder, TINY_AESTHETIC, TINY_AESTHETIC_CONFIG, seed=6)
    return {"head": save_tiny_aesthetic_head(folder), "clip_weights": clip, "clip_model": config}
