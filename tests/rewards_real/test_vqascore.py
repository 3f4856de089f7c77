"""VQAScore: the formula and batching on a tiny T5, and the error when the t2v_metrics plugin is absent."""
from __future__ import annotations

import sys

import pytest
import torch

from miro.errors import MiroError
from miro.rewards.base import ScorerInfo
from miro.rewards.real import vqascore
from miro.rewards.real.runtime import make_runtime

from .tiny_t5 import tiny_t5


class TextOnlyT5:
    """CLIP-FlanT5's teacher-forced call without the image: question tokens in, answer tokens as labels."""

    def __init__(self, model, tokenizer) -> None:
        self.model, self.tokenizer = model, tokenizer

    def answer_logits(self, images, questions, answer):
        encoded = self.tokenizer(questions, padding=True, return_tensors="pt")
        labels = self.tokenizer([answer] * len(questions), return_tensors="pt").input_ids
        logits = self.model(input_ids=encoded.input_ids, attention_mask=encoded.attention_mask, labels=labels).logits
        return logits, labels


@pytest.fixture(scope="module")
def t5(tmp_path_factory):
    return tiny_t5(tmp_path_factory.mktemp("t5"))


def stepwise_yes_probability(model, tokenizer, question: str) -> torch.Tensor:
    """Decode step by step: sqrt(P(Yes | q) * P(</s> | q, Yes)), the geometric mean over the answer's tokens."""
    yes, eos = tokenizer("Yes").input_ids
    encoded = tokenizer(question, return_tensors="pt")
    decoded = torch.tensor([[model.config.decoder_start_token_id]])
    log_p = torch.zeros(())
    for token in (yes, eos):
        next_logits = model(**encoded, decoder_input_ids=decoded).logits[0, -1]
        log_p += next_logits.log_softmax(-1)[token]
        decoded = torch.cat([decoded, torch.tensor([[token]])], dim=1)
    return torch.exp(log_p / 2)


def test_answer_is_yes_then_end_of_text(t5):
    _, tokenizer = t5
    assert tokenizer.convert_ids_to_tokens(tokenizer(vqascore.ANSWER).input_ids) == ["▁Yes", "</s>"]


def test_formula_matches_stepwise_decoding(t5, batch, prompts):
    model, tokenizer = t5
    info = ScorerInfo(name="vqascore", version="tiny-t5")
    ours = vqascore.VQAScorer(TextOnlyT5(model, tokenizer), make_runtime(), info).score(batch, prompts)
    with torch.no_grad():
        reference = torch.stack([stepwise_yes_probability(model, tokenizer, vqascore.QUESTION.format(p)) for p in prompts])
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)
    assert ((ours > 0) & (ours <= 1)).all()


def test_padded_label_positions_do_not_count():
    logits = torch.randn(2, 3, 5)
    labels = torch.tensor([[1, 2, vqascore.IGNORE_INDEX], [1, 2, 3]])
    probs = vqascore.answer_probability(logits, labels)
    expected_first = logits[0, :2].log_softmax(-1).gather(1, torch.tensor([[1], [2]])).mean().exp()
    torch.testing.assert_close(probs[0], expected_first)


def test_missing_plugin_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "t2v_metrics", None)  # import fails as when not installed
    with pytest.raises(MiroError, match="optional t2v_metrics==3.0 plugin"):
        vqascore.build()


def test_hub_offline_blocks_requests_and_restores():
    import huggingface_hub.constants
    from huggingface_hub import hf_hub_download

    before = huggingface_hub.constants.HF_HUB_OFFLINE
    with vqascore.hub_offline(True), pytest.raises(OSError):
        hf_hub_download("zhiqiulin/clip-flant5-xxl", "config.json", cache_dir="/nonexistent-cache")
    assert huggingface_hub.constants.HF_HUB_OFFLINE == before


def test_unknown_model_suggests_the_close_one():
    with pytest.raises(MiroError, match='did you mean "clip-flant5-xl"'):
        vqascore.build(model="clip-flant5-x")
