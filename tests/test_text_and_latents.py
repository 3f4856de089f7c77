import pytest
import torch

from miro.config import LatentConfig, TextConfig
from miro.errors import MiroError
from miro.latents import build_latent_space
from miro.text import ShapesTextEncoder, build_text_encoder


def test_shapes_encoder_is_deterministic_order_aware_and_masks_padding():
    enc = ShapesTextEncoder(dim=16, max_tokens=8)
    feats, mask = enc.encode(["a red circle", "circle red a", ""])
    again, _ = ShapesTextEncoder(dim=16, max_tokens=8).encode(["a red circle"])
    assert torch.equal(feats[0], again[0])
    assert not torch.allclose(feats[0], feats[1])  # word order matters (positions)
    assert mask.sum(dim=1).tolist() == [3, 3, 0]
    assert feats[2].abs().sum() == 0


def _tiny_t5(folder):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, "a": 3, "red": 4, "circle": 5}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>").save_pretrained(folder)
    config = T5Config(vocab_size=len(vocab), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2)
    T5EncoderModel(config).save_pretrained(folder)


def test_t5_encoder_loads_a_local_folder(tmp_path):
    _tiny_t5(tmp_path)
    enc = build_text_encoder(TextConfig(encoder="t5", path=str(tmp_path), max_tokens=6))
    feats, mask = enc.encode(["a red circle", ""])
    assert feats.shape == (2, 6, 16) and enc.dim == 16
    assert mask[0].sum() == 3 and mask[1].sum() == 0


def test_t5_encoder_without_weights_names_the_fix(tmp_path):
    with pytest.raises(MiroError, match="has no config.json; point it to a local T5 folder"):
        build_text_encoder(TextConfig(encoder="t5", path=str(tmp_path)))


def test_vae_latent_space_round_trips_shapes(tmp_path):
    from diffusers import AutoencoderKL

    AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8,
                  sample_size=16).save_pretrained(tmp_path)
    space = build_latent_space(LatentConfig(space="vae", vae_path=str(tmp_path)))
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    latents = space.encode(images)
    assert latents.shape == (2, 4, 8, 8) and space.downsample == 2
    assert space.decode(latents).shape == images.shape


def test_missing_vae_names_the_fix(tmp_path):
    with pytest.raises(MiroError, match="has no config.json; point it to a local AutoencoderKL folder"):
        build_latent_space(LatentConfig(space="vae", vae_path=str(tmp_path / "nope")))
