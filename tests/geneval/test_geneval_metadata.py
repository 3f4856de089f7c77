"""The prompt metadata reader on the published file, its checks, and the checksummed download (offline:
file:// URLs stand in for the network)."""
from __future__ import annotations

import json
import urllib.request
from collections import Counter

import pytest

from harness.geneval import metadata
from harness.geneval.metadata import (
    download_geneval_files,
    fetch_verified,
    parse_prompt,
    read_class_names,
    read_metadata,
)
from miro.errors import MiroError
from miro.rewards.real.weights import sha256_file


def test_the_published_prompts(geneval_data):
    names = read_class_names(geneval_data / "object_names.txt")
    specs = read_metadata(geneval_data / "evaluation_metadata.jsonl", class_names=names)
    assert len(names) == 80 and len(specs) == 553
    assert Counter(s.tag for s in specs) == {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94,
                                             "position": 100, "color_attr": 100}
    for s in specs:
        if s.tag == "counting":
            (clause,), (limit,) = s.include, s.exclude
            assert 2 <= clause.count <= 4 and limit.cls == clause.cls and limit.count == clause.count + 1
        else:
            assert s.exclude == ()
        if s.tag == "position":
            assert s.include[1].position[1] == 0
    lines = (geneval_data / "evaluation_metadata.jsonl").read_text().splitlines()
    assert [s.source for s in specs] == [json.dumps(json.loads(line)) for line in lines]


@pytest.mark.parametrize("obj, message", [
    ({"tag": "single", "include": [{"class": "cat", "count": 1}], "prompt": "p"}, 'did you mean "single_object"'),
    ({"tag": "colors", "include": [{"class": "cat", "count": 1, "color": "redd"}], "prompt": "p"}, '"red"'),
    ({"tag": "colors", "include": [{"class": "cat", "count": 0}], "prompt": "p"}, "count"),
    ({"tag": "position", "include": [{"class": "cat", "count": 1, "position": ["left of", 0]}], "prompt": "p"},
     "earlier include clause"),
    ({"tag": "colors", "include": [], "prompt": "p"}, "include"),
    ({"tag": "colors", "include": [{"class": "cta", "count": 1}], "prompt": "p"}, 'did you mean "cat"'),
])
def test_bad_metadata_names_the_problem(obj, message):
    with pytest.raises(MiroError, match=message):
        parse_prompt(obj, class_names=["cat", "dog"])


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(MiroError, match="download_geneval_files"):
        read_metadata(tmp_path / "nope.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"tag": "colors"\n')
    with pytest.raises(MiroError, match="bad.jsonl:1"):
        read_metadata(tmp_path / "bad.jsonl")


def test_fetch_verified_keeps_only_matching_files(tmp_path, monkeypatch):
    source = tmp_path / "source.txt"
    source.write_bytes(b"geneval")
    good = sha256_file(source)
    dest = fetch_verified(source.as_uri(), tmp_path / "out" / "copy.txt", good)
    assert dest.read_bytes() == b"geneval"
    with pytest.raises(MiroError, match="does not match"):
        fetch_verified(source.as_uri(), tmp_path / "out" / "other.txt", "0" * 64)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["copy.txt"]  # nothing half-trusted left

    def no_network(*args, **kwargs):
        raise AssertionError("a verified file must not be fetched again")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    assert fetch_verified(source.as_uri(), dest, good) == dest


def test_the_pins_match_the_published_files(geneval_data, tmp_path, monkeypatch):
    local = {name: ((geneval_data / name).as_uri(), sha) for name, (_, sha) in metadata.GENEVAL_FILES.items()}
    monkeypatch.setattr(metadata, "GENEVAL_FILES", local)
    meta, names = download_geneval_files(tmp_path)
    assert len(read_metadata(meta, read_class_names(names))) == 553
