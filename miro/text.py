"""Text encoders behind one interface: captions -> (token features (B, L, D), key mask (B, L)).

`ShapesTextEncoder` is the built-in encoder of the embedded world: every word gets a fixed random
vector (seeded by a stable hash of the word) plus a sinusoidal position code, so captions are
encoded identically on every machine with no download and no training. `T5TextEncoder` is the real
path (FLAN-T5 through transformers' T5EncoderModel, from a local folder). Both are frozen.
"""
from __future__ import annotations

import math
import re
import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import torch

from miro.config import TextConfig
from miro.errors import MiroError
from miro.warm import kept


class TextEncoder(ABC):
    dim: int
    max_tokens: int

    @abstractmethod
    def encode(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, D) float features and (B, L) bool mask, L = max_tokens; "" is the null caption."""

    def fingerprint(self) -> str:
        return f"{type(self).__name__}:{self.dim}x{self.max_tokens}"


class ShapesTextEncoder(TextEncoder):
    def __init__(self, dim: int = 64, max_tokens: int = 24) -> None:
        self.dim, self.max_tokens = dim, max_tokens
        self._cache: dict[str, torch.Tensor] = {}
        position = torch.arange(max_tokens).unsqueeze(1)
        freqs = torch.exp(-math.log(100.0) * torch.arange(0, dim, 2) / dim)
        self.positions = torch.zeros(max_tokens, dim)
        self.positions[:, 0::2] = torch.sin(position * freqs)
        self.positions[:, 1::2] = torch.cos(position * freqs)

    def _word(self, word: str) -> torch.Tensor:
        if word not in self._cache:
            g = torch.Generator().manual_seed(zlib.crc32(word.encode()))
            self._cache[word] = torch.randn(self.dim, generator=g)
        return self._cache[word]

    def encode(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        feats = torch.zeros(len(captions), self.max_tokens, self.dim)
        mask = torch.zeros(len(captions), self.max_tokens, dtype=torch.bool)
        for i, caption in enumerate(captions):
            words = re.findall(r"[a-z0-9]+|[^\sa-z0-9]", caption.lower())[: self.max_tokens]
            for j, word in enumerate(words):
                feats[i, j] = self._word(word) + self.positions[j]
            mask[i, : len(words)] = True
        return feats, mask


class T5TextEncoder(TextEncoder):
    """FLAN-T5 encoder from a local folder (config.json, weights, tokenizer files); no hub access."""

    def __init__(self, path: str, max_tokens: int = 128, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        from transformers import AutoTokenizer, T5EncoderModel

        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise MiroError(f"text.path = {path!r} has no config.json; point it to a local T5 folder saved with save_pretrained (e.g. google/flan-t5-xl)")
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = T5EncoderModel.from_pretrained(folder, torch_dtype=dtype, local_files_only=True).to(device).eval().requires_grad_(False)
        self.device = torch.device(device)
        self.dim, self.max_tokens = int(self.model.config.d_model), max_tokens
        self.path = str(folder)

    @torch.no_grad()
    def encode(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.tokenizer(list(captions), padding="max_length", truncation=True, max_length=self.max_tokens,
                                return_tensors="pt").to(self.device)
        feats = self.model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
        return feats.float(), tokens.attention_mask.bool()

    def fingerprint(self) -> str:
        return f"T5TextEncoder:{self.path}:{self.dim}x{self.max_tokens}"


class StoredNullCaption(TextEncoder):
    """Another encoder, except that the null caption "" is a stored embedding with every token attended
    (the released pipeline samples its negative branch this way, from uncond_embedding.npy)."""

    def __init__(self, inner: TextEncoder, path: str) -> None:
        import numpy as np

        if not Path(path).is_file():
            raise MiroError(f"text.null_embedding = {path!r} does not exist; point it to the run's uncond_embedding.npy or set it to \"\"")
        self.null = torch.from_numpy(np.load(path).astype("float32"))
        self.inner, self.dim, self.max_tokens = inner, inner.dim, inner.max_tokens
        if tuple(self.null.shape) != (self.max_tokens, self.dim):
            raise MiroError(f"text.null_embedding {path} has shape {tuple(self.null.shape)}, the text encoder gives ({self.max_tokens}, {self.dim}); set text.max_tokens = {self.null.shape[0]}")

    def encode(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        feats, mask = self.inner.encode(captions)
        null = torch.tensor([c == "" for c in captions])
        feats[null] = self.null.to(feats.device, feats.dtype)
        mask[null] = True
        return feats, mask

    def fingerprint(self) -> str:
        return f"{self.inner.fingerprint()}+null:{zlib.crc32(self.null.numpy().tobytes()):08x}"


@kept  # frozen once built: a warm worker keeps it for the next unit
def build_text_encoder(cfg: TextConfig, device: str | torch.device = "cpu") -> TextEncoder:
    encoder: TextEncoder = T5TextEncoder(cfg.path, cfg.max_tokens, device) if cfg.encoder == "t5" \
        else ShapesTextEncoder(cfg.dim, cfg.max_tokens)
    return StoredNullCaption(encoder, cfg.null_embedding) if cfg.null_embedding else encoder
