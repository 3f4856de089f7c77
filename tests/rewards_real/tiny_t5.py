"""A tiny random T5 with a real sentencepiece tokenizer, standing in for CLIP-FlanT5's language model.

Only the VQAScore formula can be exercised offline: the tokenizer is trained here on a few sentences,
with "Yes" as one piece as in T5's vocabulary.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

SENTENCES = [
    'Does this figure show "a red cube on a table"? Please answer yes or no.',
    'Does this figure show "two cats asleep on a sofa"? Please answer yes or no.',
    "Yes. No. A watercolor of a lighthouse at dusk.",
] * 20


def tiny_t5(folder: Path) -> tuple[Any, Any]:
    """(T5ForConditionalGeneration, T5Tokenizer): pad 0, eos 1, unk 2, 40 pieces."""
    import sentencepiece
    from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES),
        model_prefix=str(folder / "spiece"),
        vocab_size=40,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        user_defined_symbols=["▁Yes"],
        minloglevel=2,
    )
    tokenizer = T5Tokenizer(str(folder / "spiece.model"), extra_ids=0, legacy=True)
    config = T5Config(
        vocab_size=40, d_model=32, d_kv=16, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=2,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )
    torch.manual_seed(8)
    return T5ForConditionalGeneration(config).eval(), tokenizer
