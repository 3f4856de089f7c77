"""Long-caption CLIP score, the class of the released code's "clip_score" reward: 100 * cos, long prompts kept.

The released reward is jinaai/jina-clip-v2 (XLM-RoBERTa text tower, 8192 positions, prompts cut at 1024
tokens). Its Hub folder is custom code (model_type "jina_clip") that transformers runs only with
trust_remote_code=True; running a repository's Python is left to the user as an optional path outside
this scorer, which refuses such a folder with a MiroError. This scorer loads any transformers
CLIPModel folder (for instance a Long-CLIP with 248 positions) and keeps `max_text_tokens` of the prompt.
"""
from __future__ import annotations

from pathlib import Path

from miro.rewards.real.hf_clip import HFClipScorer, build_hf_clip
from miro.rewards.real.runtime import make_runtime
from miro.rewards.real.sources import existing_path

HOW_TO_GET = "huggingface-cli download zer0int/LongCLIP-L-Diffusers --local-dir DIR (any transformers CLIPModel folder)"


def build(
    model_dir: str | Path,
    processor_dir: str | Path | None = None,
    max_text_tokens: int | None = None,
    device: str = "cpu",
    dtype: str = "float32",
) -> HFClipScorer:
    """Load a CLIPModel folder; keep `max_text_tokens` prompt tokens (default: all the model's text positions)."""
    runtime = make_runtime(device, dtype)
    model_path = existing_path(model_dir, "model_dir", HOW_TO_GET)
    processor_path = model_path if processor_dir is None else existing_path(processor_dir, "processor_dir", HOW_TO_GET)
    return build_hf_clip("jina_clip", f"long-clip:{model_path.name}", model_path, processor_path, False, max_text_tokens, runtime)
