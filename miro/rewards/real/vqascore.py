"""VQAScore: how likely a VQA model answers "Yes" to 'Does this figure show "{prompt}"? Please answer yes or no.'

score = exp(-mean over the answer's tokens of cross-entropy(logits, answer)), t2v_metrics' formula.
The T5 answer "Yes" is two tokens ("Yes", "</s>"), so the score is the geometric mean of
P("Yes" | image, question) and P("</s>" | image, question, "Yes"); it lies in (0, 1].

The released reward is CLIP-FlanT5-XXL (11B) through t2v_metrics 3.0 (3.1 dropped clip-flant5). That
package pins torch 2.5.1 and transformers 4.49 and needs ffmpeg at import, so it is an optional plugin
installed in its own environment; without it `build` raises a MiroError. The formula and the batching
are ours and tested on a tiny T5; the CLIP-FlanT5 inputs are built with t2v_metrics' own functions.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from unittest import mock

import torch
from PIL import Image

from miro.errors import MiroError, unknown_name_error
from miro.rewards.base import Scorer, ScorerInfo
from miro.rewards.real.details import scorer_details
from miro.rewards.real.images import to_pil_images
from miro.rewards.real.runtime import Runtime, make_runtime
from miro.rewards.real.weights import sha256_folder

QUESTION = 'Does this figure show "{}"? Please answer yes or no.'
ANSWER = "Yes"
IGNORE_INDEX = -100  # label padding, skipped by the cross-entropy
MODELS = {"clip-flant5-xxl": "zhiqiulin/clip-flant5-xxl", "clip-flant5-xl": "zhiqiulin/clip-flant5-xl"}
PLUGIN_HINT = (
    "vqascore needs the optional t2v_metrics==3.0 plugin (pins torch 2.5.1, needs ffmpeg): "
    "install it in a separate environment with pip install t2v-metrics==3.0"
)


def answer_probability(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """exp(-mean token cross-entropy) of each row's answer; logits (B, T, V), labels (B, T) padded with -100."""
    token_nll = torch.nn.functional.cross_entropy(
        logits.float().transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none"
    )  # (B, T), 0 at padding
    answer_tokens = (labels != IGNORE_INDEX).sum(dim=1)  # (B,)
    return torch.exp(-token_nll.sum(dim=1) / answer_tokens)


class AnswerModel(Protocol):
    """A VQA model run teacher-forced on one answer."""

    def answer_logits(
        self, images: list[Image.Image], questions: list[str], answer: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, T, V), labels (B, T)) of `answer` after each (image, question); padding labels are -100."""
        ...


class VQAScorer(Scorer):
    """P(answer "Yes" | image, question about the prompt), see the module docstring."""

    def __init__(self, model: AnswerModel, runtime: Runtime, info: ScorerInfo) -> None:
        self._model = model
        self._runtime = runtime
        self.info = info

    @torch.inference_mode()
    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        pil_images = to_pil_images(images, prompts)
        questions = [QUESTION.format(prompt) for prompt in prompts]
        with self._runtime.autocast():
            logits, labels = self._model.answer_logits(pil_images, questions, ANSWER)
        return answer_probability(logits, labels).cpu()


class T2VClipT5:
    """CLIP-FlanT5 from t2v_metrics, with inputs built exactly as its `CLIPT5Model.forward` builds them."""

    def __init__(self, t2v_model: Any, device: torch.device) -> None:
        self._t2v = t2v_model  # t2v_metrics CLIPT5Model: .tokenizer, .model, .image_processor, .conversational_style
        self._device = device

    def answer_logits(
        self, images: list[Image.Image], questions: list[str], answer: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from t2v_metrics.models.vqascore_models.clip_t5_model import format_question
        from t2v_metrics.models.vqascore_models.mm_utils import expand2square, t5_tokenizer_image_token

        t2v, tokenizer = self._t2v, self._t2v.tokenizer
        background = tuple(int(x * 255) for x in t2v.image_processor.image_mean)  # 'pad' aspect ratio
        squares = [expand2square(image, background) for image in images]
        pixels = torch.stack([t2v.image_processor.preprocess(sq, return_tensors="pt")["pixel_values"][0] for sq in squares])
        prompts = [format_question(q, conversation_style=t2v.conversational_style) for q in questions]
        input_ids = torch.nn.utils.rnn.pad_sequence(
            [t5_tokenizer_image_token(p, tokenizer, return_tensors="pt") for p in prompts],
            batch_first=True,
            padding_value=tokenizer.pad_token_id,
        )[:, : tokenizer.model_max_length]
        labels = torch.nn.utils.rnn.pad_sequence(
            [t5_tokenizer_image_token(answer, tokenizer, return_tensors="pt") for _ in prompts],
            batch_first=True,
            padding_value=IGNORE_INDEX,
        )[:, : tokenizer.model_max_length]
        out = t2v.model(
            input_ids=input_ids.to(self._device),
            attention_mask=input_ids.ne(tokenizer.pad_token_id).to(self._device),
            decoder_attention_mask=labels.ne(IGNORE_INDEX).to(self._device),
            labels=labels.to(self._device),
            images=pixels.to(self._device),
            return_dict=True,
        )
        return out.logits, labels.to(self._device)


@contextmanager
def hub_offline(offline: bool) -> Iterator[None]:
    """While active (when `offline`), every Hugging Face Hub request fails and loaders fall back to the cache.

    t2v_metrics fetches three repositories by name (CLIP-FlanT5, the FlanT5 tokenizer, the CLIP vision
    tower); blocking the Hub is how it runs only from files already there.
    """
    import huggingface_hub.constants

    with mock.patch.object(huggingface_hub.constants, "HF_HUB_OFFLINE", offline):
        yield


def build(
    model: str = "clip-flant5-xxl",
    cache_dir: str | Path | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    allow_download: bool = False,
) -> VQAScorer:
    """Load CLIP-FlanT5 through t2v_metrics from `cache_dir`, a Hugging Face cache (None: the default one).

    t2v_metrics itself runs the model under bfloat16 autocast on CUDA: pass dtype="bfloat16" to match it.
    """
    if model not in MODELS:
        raise unknown_name_error("VQAScore model", model, MODELS)
    runtime = make_runtime(device, dtype)
    try:
        from t2v_metrics.models.vqascore_models.clip_t5_model import CLIPT5Model
    except ImportError as err:
        raise MiroError(PLUGIN_HINT) from err
    from huggingface_hub import snapshot_download

    cache = None if cache_dir is None else str(cache_dir)
    try:
        with hub_offline(not allow_download):
            t2v_model = CLIPT5Model(model, device=str(runtime.device), cache_dir=cache)
            snapshot = Path(snapshot_download(MODELS[model], cache_dir=cache))
    except OSError as err:  # the Hub's offline and not-in-cache errors are OSErrors
        raise MiroError(
            f"t2v_metrics could not load {model} from cache_dir={cache} ({str(err).splitlines()[0]}); "
            "run once with allow_download=True"
        ) from err
    info = ScorerInfo(
        name="vqascore",
        version=f"t2v_metrics {model}",
        score_range=(0.0, 1.0),
        details=scorer_details(
            runtime,
            {"model_dir": sha256_folder(snapshot)},
            "t2v_metrics CLIP-FlanT5: pad to square with the mean colour, CLIP image processor; t5_chat prompt",
            ("t2v-metrics", "transformers"),
            question=QUESTION,
            answer=ANSWER,
            formula="exp(-mean answer-token cross-entropy)",
        ),
    )
    return VQAScorer(T2VClipT5(t2v_model, runtime.device), runtime, info)
