"""Where each weight file or folder comes from, so a missing one fails with the command that fetches it.

Scorers read weights from paths the user gives. Only with `allow_download=True` do they fetch the
published files themselves (into the Hugging Face or torch hub cache); tests never do.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from miro.errors import MiroError


class Source(Protocol):
    """A published file or folder: how a person gets it, and how a scorer downloads it when allowed."""

    def how_to_get(self) -> str: ...

    def download(self) -> Path: ...


@dataclass(frozen=True)
class HubFile:
    """One file of a Hugging Face Hub repository."""

    repo: str
    filename: str

    def how_to_get(self) -> str:
        return f"huggingface-cli download {self.repo} {self.filename} --local-dir DIR"

    def download(self) -> Path:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(self.repo, self.filename))


@dataclass(frozen=True)
class HubFolder:
    """A Hugging Face Hub repository (or the files of it matching `patterns`) as a local folder."""

    repo: str
    patterns: tuple[str, ...] = ()

    def how_to_get(self) -> str:
        include = "".join(f" --include '{pattern}'" for pattern in self.patterns)
        return f"huggingface-cli download {self.repo}{include} --local-dir DIR"

    def download(self) -> Path:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(self.repo, allow_patterns=list(self.patterns) or None))


@dataclass(frozen=True)
class UrlFile:
    """A file published at a plain URL (not on the Hub), cached under torch's hub directory."""

    url: str

    def how_to_get(self) -> str:
        return f"wget '{self.url}'"

    def download(self) -> Path:
        import torch.hub

        target = Path(torch.hub.get_dir()) / "miro" / self.url.rsplit("/", 1)[-1].replace("%2B", "+")
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(self.url, str(target))
        return target


def existing_path(path: str | Path, option: str, how_to_get: str) -> Path:
    """`path` as a Path, or a one-line MiroError naming it and how to get it."""
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise MiroError(f"{option}={resolved} does not exist; get it with: {how_to_get}")
    return resolved


def resolve(path: str | Path | None, source: Source, option: str, allow_download: bool) -> Path:
    """The local path for `option`: the one given, else a download when allowed, else a MiroError."""
    if path is not None:
        return existing_path(path, option, source.how_to_get())
    if allow_download:
        return source.download()
    raise MiroError(
        f"no {option} given: pass {option}=PATH (get it with: {source.how_to_get()}) or allow_download=True"
    )
