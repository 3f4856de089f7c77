"""An open_clip architecture named on the command line: a registered name, or a model config JSON file.

open_clip only builds architectures in its config registry; passing a JSON file (open_clip's own config
format, e.g. a ViT-bigG-14.json or a tiny test config) registers it under the file's stem, so HPSv2 and
GenEval's colour classifier can run another architecture without Python code.
"""
from __future__ import annotations

from pathlib import Path
from types import ModuleType

from miro.errors import MiroError


def open_clip_arch(open_clip: ModuleType, name_or_config: str | Path) -> str:
    """The architecture name to build, registering `name_or_config` first when it is a .json file."""
    text = str(name_or_config)
    if not text.endswith(".json"):
        return text
    path = Path(text).expanduser()
    if not path.is_file():
        raise MiroError(f"open_clip model config {path} does not exist; pass an architecture name (e.g. ViT-H-14) or an open_clip config JSON")
    open_clip.add_model_config(path)
    return path.stem
