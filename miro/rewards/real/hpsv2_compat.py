"""Import hpsv2's vendored open_clip although the hpsv2 1.2.0 wheel lacks its BPE vocabulary file.

hpsv2/src/open_clip/tokenizer.py builds its tokenizer at import time from
`bpe_simple_vocab_16e6.txt.gz` beside it, which the wheel does not ship. open_clip_torch ships the
identical file (sha256 924691ac...6804a, also the one in OpenAI's CLIP), so while hpsv2 is imported
we point gzip at that copy; nothing is written into site-packages and the user copies nothing.
"""
from __future__ import annotations

import gzip
import importlib
import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

from miro.errors import MiroError

BPE_NAME = "bpe_simple_vocab_16e6.txt.gz"
INSTALL_HINT = "pip install --no-deps -r requirements-nodeps.txt (hpsv2==1.2.0 and its extras)"


def open_clip_bpe() -> Path:
    """The CLIP BPE vocabulary bundled with open_clip_torch."""
    import open_clip

    return Path(open_clip.__file__).parent / BPE_NAME


def hpsv2_open_clip() -> ModuleType:
    """Return `hpsv2.src.open_clip`, importing it with its missing BPE file redirected to open_clip's copy."""
    if "hpsv2.src.open_clip" in sys.modules:
        return sys.modules["hpsv2.src.open_clip"]
    spec = importlib.util.find_spec("hpsv2")
    if spec is None or spec.origin is None:
        raise MiroError(f"the hpsv2 scorer needs the hpsv2 package: {INSTALL_HINT}")
    missing = Path(spec.origin).parent / "src" / "open_clip" / BPE_NAME
    try:
        with _bpe_redirected(missing):
            return importlib.import_module("hpsv2.src.open_clip")
    except ImportError as err:  # e.g. clint, which hpsv2/__init__ imports
        raise MiroError(f"hpsv2 cannot be imported ({err}): {INSTALL_HINT}") from err


@contextmanager
def _bpe_redirected(missing: Path) -> Iterator[None]:
    """While active, gzip.open(missing) opens open_clip's BPE file instead (when `missing` is really missing)."""
    if missing.exists():
        yield
        return
    original_open = gzip.open
    replacement = str(open_clip_bpe())

    def open_redirected(filename: Any, *args: Any, **kwargs: Any) -> Any:
        target = replacement if Path(str(filename)) == missing else filename
        return original_open(target, *args, **kwargs)

    with mock.patch("gzip.open", open_redirected):
        yield
