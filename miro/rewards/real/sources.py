"""Where each weight file or folder comes from, so a missing one fails with the command that fetches it.

Scorers read weights from paths the user gives. Only with `allow_download=True` do they fetch the
published files themselves (into the Hugging Face or torch hub cache); tests never do.

Every download is pinned. A Hub source names its commit (`revision`) where one is known; where it is None,
the repository's current commit is asked once (`HfApi().model_info(repo).sha`), and that commit and each
file's sha256 are recorded in the ledger `<HF cache>/miro-revisions.json`. Later downloads use the recorded
commit, never the branch head, and refuse a file whose sha256 changed. We chose this over refusing
unpinned downloads because no commit here was checked by us, so one written into the code would only look
trustworthy; the ledger pins what was actually fetched, on first use. A file at a plain URL has no commit:
its sha256 is pinned the same way. An evaluation's manifest names, for each scorer weight whose sha256 the
ledger holds, the repository and commit it came from (`downloaded_from`).
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from miro.errors import MiroError, corrupt_file_error
from miro.files import write_json_atomic
from miro.rewards.real.weights import sha256_file, sha256_folder

LEDGER = "miro-revisions.json"


class Source(Protocol):
    """A published file or folder: how a person gets it, and how a scorer downloads it when allowed."""

    def how_to_get(self) -> str: ...

    def download(self) -> Path: ...


def ledger_path() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / LEDGER


def _ledger() -> dict[str, Any]:
    path = ledger_path()
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as error:
        raise corrupt_file_error(path, error, "delete it to pin the downloads again") from None


def pinned_revision(repo: str, revision: str | None) -> str:
    """`revision` if the source names one, else the commit recorded for `repo`, else its current commit."""
    if revision:
        return revision
    recorded = _ledger().get(repo, {}).get("revision")
    if recorded:
        return str(recorded)
    from huggingface_hub import HfApi

    current = str(HfApi().model_info(repo).sha)
    print(f"pinned {repo} to its current commit {current} (recorded in {ledger_path()})", file=sys.stderr)
    return current


def record(source: str, revision: str | None, what: str, path: Path, digest: Callable[[Path], str]) -> Path:
    """Record (or check against the record) the sha256 of `path`, downloaded from `source` at `revision`."""
    ledger = _ledger()
    entry = ledger.get(source, {})
    if entry.get("revision") != revision:
        entry = {"revision": revision, "sha256": {}}
    found, before = digest(path), entry["sha256"].get(what)
    if before and before != found:
        raise MiroError(f"{path} from {source}@{revision} has sha256 {found}, not the {before} recorded in {ledger_path()} "
                        "when it was first downloaded; delete it from the cache to download it again")
    entry["sha256"][what] = found
    write_json_atomic(ledger_path(), {**ledger, source: entry})
    return path


def downloaded_from(digests: Iterable[str]) -> dict[str, str]:
    """sha256 -> "source@revision what" for each of `digests` the ledger recorded (none without huggingface_hub)."""
    try:
        ledger = _ledger()
    except ImportError:
        return {}
    wanted = set(digests)
    return {digest: f"{source}@{entry.get('revision') or 'no commit'} {what}"
            for source, entry in ledger.items() for what, digest in entry.get("sha256", {}).items() if digest in wanted}


@dataclass(frozen=True)
class HubFile:
    """One file of a Hugging Face Hub repository, at `revision` (a commit; None: pinned on first download)."""

    repo: str
    filename: str
    revision: str | None = None

    def how_to_get(self) -> str:
        pin = f" --revision {self.revision}" if self.revision else ""
        return f"huggingface-cli download {self.repo} {self.filename}{pin} --local-dir DIR"

    def download(self) -> Path:
        from huggingface_hub import hf_hub_download

        revision = pinned_revision(self.repo, self.revision)
        path = Path(hf_hub_download(self.repo, self.filename, revision=revision))
        return record(self.repo, revision, self.filename, path, sha256_file)


@dataclass(frozen=True)
class HubFolder:
    """A Hugging Face Hub repository (or the files of it matching `patterns`) as a local folder, at `revision`."""

    repo: str
    patterns: tuple[str, ...] = ()
    revision: str | None = None

    def how_to_get(self) -> str:
        include = "".join(f" --include '{pattern}'" for pattern in self.patterns)
        pin = f" --revision {self.revision}" if self.revision else ""
        return f"huggingface-cli download {self.repo}{include}{pin} --local-dir DIR"

    def download(self) -> Path:
        from huggingface_hub import snapshot_download

        revision = pinned_revision(self.repo, self.revision)
        path = Path(snapshot_download(self.repo, allow_patterns=list(self.patterns) or None, revision=revision))
        return record(self.repo, revision, " ".join(self.patterns) or "*", path, sha256_folder)


@dataclass(frozen=True)
class UrlFile:
    """A file published at a plain URL (not on the Hub), cached under torch's hub directory; its sha256 is pinned."""

    url: str

    def how_to_get(self) -> str:
        return f"wget '{self.url}'"

    def download(self) -> Path:
        import torch.hub

        target = Path(torch.hub.get_dir()) / "miro" / self.url.rsplit("/", 1)[-1].replace("%2B", "+")
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(self.url, str(target))
        return record(self.url, None, "file", target, sha256_file)


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
