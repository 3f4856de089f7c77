"""Downloads are pinned: an explicit commit is passed to the Hub, recorded with each file's sha256, and checked
on later downloads. The Hub is never reached: its functions are replaced."""
from __future__ import annotations

import json
from types import SimpleNamespace

import huggingface_hub
import pytest
from huggingface_hub import constants

from miro.errors import MiroError
from miro.rewards.real.sources import HubFile, HubFolder, downloaded_from, ledger_path
from miro.rewards.real.weights import sha256_file

HEAD = "a" * 40


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A fake Hub whose files live under tmp_path; records every revision asked for."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    asked: list[tuple[str, str]] = []

    def fetch(repo, filename, revision):
        path = tmp_path / "cache" / repo / revision / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_bytes(b"weights")
        return str(path)

    def hf_hub_download(repo, filename, revision):
        asked.append(("file", revision))
        return fetch(repo, filename, revision)

    def snapshot_download(repo, allow_patterns, revision):
        asked.append(("folder", revision))
        return fetch(repo, "config.json", revision).rsplit("/", 1)[0]

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: SimpleNamespace(model_info=lambda repo: SimpleNamespace(sha=HEAD)))
    return asked


def test_an_unpinned_file_is_pinned_to_the_current_commit_once_and_recorded(hub, capsys, monkeypatch):
    path = HubFile("org/repo", "model.pt").download()
    assert hub == [("file", HEAD)] and path.read_bytes() == b"weights"
    assert f"pinned org/repo to its current commit {HEAD}" in capsys.readouterr().err
    ledger = json.loads(ledger_path().read_text())
    assert ledger["org/repo"]["revision"] == HEAD and set(ledger["org/repo"]["sha256"]) == {"model.pt"}
    monkeypatch.setattr(huggingface_hub, "HfApi", None)  # a later download must use the record, never ask for the head again
    HubFile("org/repo", "model.pt").download()
    assert hub[-1] == ("file", HEAD)


def test_a_known_commit_is_passed_as_is(hub):
    HubFolder("org/repo", ("*.json",), revision="b" * 40).download()
    HubFile("org/other", "x.pt", revision="c" * 40).download()
    assert hub == [("folder", "b" * 40), ("file", "c" * 40)]
    assert "--revision " + "c" * 40 in HubFile("org/other", "x.pt", revision="c" * 40).how_to_get()


def test_a_file_that_changed_since_it_was_recorded_is_refused(hub):
    path = HubFile("org/repo", "model.pt").download()
    path.write_bytes(b"other weights")
    with pytest.raises(MiroError, match=r"model.pt from org/repo@a{40} has sha256 \w+, not the \w+ recorded in .*miro-revisions.json "
                                        r"when it was first downloaded; delete it from the cache to download it again$"):
        HubFile("org/repo", "model.pt").download()


def test_a_damaged_ledger_names_the_fix(hub):
    ledger_path().parent.mkdir(parents=True)
    ledger_path().write_text("{garbage")
    with pytest.raises(MiroError, match="miro-revisions.json is corrupt or truncated .*; delete it to pin the downloads again"):
        HubFile("org/repo", "model.pt").download()


def test_the_manifest_names_where_recorded_weights_came_from(hub):
    path = HubFile("org/repo", "model.pt").download()
    digest = sha256_file(path)
    assert downloaded_from([digest, "f" * 64]) == {digest: f"org/repo@{HEAD} model.pt"}
