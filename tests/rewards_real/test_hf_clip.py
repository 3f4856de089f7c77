"""PickScore, SciScore, CLIPScore and the long-caption CLIP score on tiny transformers CLIP folders."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from miro.errors import MiroError
from miro.rewards.real import clip_score, jina_clip, pickscore, sciscore
from miro.tiny.clip import write_model, write_processor

from .needs import cuda


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf_clip")
    return {
        "processor": write_processor(root / "processor"),
        "model": write_model(root / "model", seed=3),
        "long_model": write_model(root / "long_model", seed=4, text_positions=248),
    }


def published_formula(model_dir: Path, processor_dir: Path, pil_images, prompts) -> torch.Tensor:
    """The PickScore reference code: separate image and text calls, normalise, logit_scale.exp() * dot."""
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(str(model_dir)).eval()
    processor = AutoProcessor.from_pretrained(str(processor_dir))
    scores = []
    with torch.no_grad():
        for image, prompt in zip(pil_images, prompts):
            image_inputs = processor(images=[image], padding=True, truncation=True, max_length=77, return_tensors="pt")
            text_inputs = processor(text=prompt, padding=True, truncation=True, max_length=77, return_tensors="pt")
            image_embs = model.get_image_features(**image_inputs)
            image_embs = image_embs / torch.norm(image_embs, dim=-1, keepdim=True)
            text_embs = model.get_text_features(**text_inputs)
            text_embs = text_embs / torch.norm(text_embs, dim=-1, keepdim=True)
            scores.append((model.logit_scale.exp() * (text_embs @ image_embs.T))[0, 0])
    return torch.stack(scores)


@pytest.mark.parametrize("module", [pickscore, sciscore], ids=["pickscore", "sciscore"])
def test_learned_scale_scorers_match_published_formula(module, folders, batch, pil_images, prompts):
    scorer = module.build(model_dir=folders["model"], processor_dir=folders["processor"])
    ours = scorer.score(batch, prompts)
    reference = published_formula(folders["model"], folders["processor"], pil_images, prompts)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)
    assert ours.std() > 1e-2
    assert scorer.info.details["formula"] == "logit_scale.exp() * cos(image_embeds, text_embeds)"


@cuda
def test_cuda_with_bf16_autocast_agrees_with_cpu(folders, batch, prompts):
    cpu = pickscore.build(model_dir=folders["model"], processor_dir=folders["processor"]).score(batch, prompts)
    gpu = pickscore.build(model_dir=folders["model"], processor_dir=folders["processor"], device="cuda", dtype="bfloat16")
    torch.testing.assert_close(gpu.score(batch, prompts), cpu, rtol=0, atol=0.5)  # logit scale: about 14 * cos


def test_clip_score_matches_torchmetrics(folders, batch, uint8_images, prompts):
    from torchmetrics.multimodal import CLIPScore
    from transformers import CLIPModel, CLIPProcessor

    ours = clip_score.build(model_dir=folders["model"], processor_dir=folders["processor"]).score(batch, prompts)
    pair = (CLIPModel.from_pretrained(str(folders["model"])), CLIPProcessor.from_pretrained(str(folders["processor"])))
    reference = []
    for image, prompt in zip(torch.from_numpy(uint8_images).permute(0, 3, 1, 2), prompts):
        metric = CLIPScore(model_name_or_path=lambda: pair)
        metric.update(image.unsqueeze(0), [prompt])  # torchmetrics takes uint8 (N, 3, H, W)
        reference.append(metric.score.clone())  # the running sum over one sample: its unclamped 100 * cos
    torch.testing.assert_close(ours, torch.stack(reference), rtol=0, atol=1e-4)


def test_long_caption_clip_keeps_tokens_past_77(folders, batch, prompts):
    long_prompts = [prompt + " with" + " many small details" * 30 for prompt in prompts]
    full = jina_clip.build(model_dir=folders["long_model"], processor_dir=folders["processor"])
    cut = jina_clip.build(model_dir=folders["long_model"], processor_dir=folders["processor"], max_text_tokens=77)
    assert not torch.allclose(full.score(batch, long_prompts), cut.score(batch, long_prompts))
    torch.testing.assert_close(full.score(batch, prompts), cut.score(batch, prompts))  # short prompts: same tokens


def test_long_caption_clip_refuses_more_tokens_than_positions(folders):
    with pytest.raises(MiroError, match="max_text_tokens=300 but .* at most 248 text positions"):
        jina_clip.build(model_dir=folders["long_model"], processor_dir=folders["processor"], max_text_tokens=300)


def test_refuses_remote_code_folders(folders, tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "jina_clip"}')
    with pytest.raises(MiroError, match='model_type "jina_clip".*trust_remote_code'):
        jina_clip.build(model_dir=tmp_path, processor_dir=folders["processor"])


def test_refuses_weights_with_missing_and_unexpected_keys(folders, tmp_path):
    broken = write_model(tmp_path / "broken", seed=5)
    weights = load_file(str(broken / "model.safetensors"))
    weights["text_projection.extra"] = weights.pop("text_projection.weight")
    save_file(weights, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(MiroError, match=r"missing keys text_projection\.weight; unexpected keys text_projection\.extra"):
        pickscore.build(model_dir=broken, processor_dir=folders["processor"])


def test_missing_folder_names_it_and_the_download(tmp_path):
    hint = "PickScore_v1 does not exist; get it with: huggingface-cli download yuvalkirstain/PickScore_v1"
    with pytest.raises(MiroError, match=hint):
        pickscore.build(model_dir=tmp_path / "PickScore_v1", processor_dir=tmp_path)
    with pytest.raises(MiroError, match="no model_dir given: pass model_dir=PATH .* or allow_download=True"):
        clip_score.build()
