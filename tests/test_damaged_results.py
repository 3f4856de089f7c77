"""A finished evaluation's files read back only when whole: damaged or non-finite ones are one-line errors."""
import json
import math

import pytest

from harness.evaluation.stored import non_finite, read_rows, read_summary
from miro.errors import MiroError

ROWS = [{"prompt_index": 0, "sample": 0, "group": "g", "pickscore": 0.5}, {"prompt_index": 1, "sample": 0, "group": "g", "pickscore": None}]


def test_whole_files_read_back(tmp_path):
    (tmp_path / "images.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / "summary.json").write_text(json.dumps({"metrics": {"pickscore": {"value": 0.5, "low": None}}}))
    rows = read_rows(tmp_path / "images.jsonl")
    assert len(rows) == 2 and math.isnan(rows["pickscore"][1])
    assert read_summary(tmp_path / "summary.json")["metrics"]["pickscore"]["value"] == 0.5


@pytest.mark.parametrize(("text", "problem"), [
    (json.dumps(ROWS[0]) + "\n" + json.dumps(ROWS[1])[:20], "line 2"),  # truncated mid-line
    ("\x00garbage\n", "line 1"),
    ('{"pickscore": NaN}\n', "NaN is not a finite number"),
    ("[1, 2]\n", "line 1 is not a JSON object"),
    ("", "no rows"),
])
def test_damaged_rows_are_refused_naming_the_file_and_fix(tmp_path, text, problem):
    path = tmp_path / "images.jsonl"
    path.write_text(text)
    with pytest.raises(MiroError, match=f"{path} is corrupt or truncated .*{problem}.*rerun the sweep with --retry") as error:
        read_rows(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("text", "problem"), [
    ('{"metrics": {"fid": {"value": NaN}}}', "NaN is not a finite number"),
    ('{"metrics": {"fid": {"value": 1e999}}}', "metric fid.value is inf"),
    ('{"metrics": {"geneval": {"shape_agnostic": {"low": -1e999}}}}', "metric geneval.shape_agnostic.low is -inf"),
    ('{"metrics": [1]}', "no metrics object"),
    ('{"metrics": {"fid": {"val', "Unterminated string"),
])
def test_damaged_or_non_finite_summaries_are_refused(tmp_path, text, problem):
    path = tmp_path / "summary.json"
    path.write_text(text)
    with pytest.raises(MiroError, match=f"corrupt or truncated .*{problem}"):
        read_summary(path)


def test_a_missing_file_names_the_fix(tmp_path):
    with pytest.raises(MiroError, match="images.jsonl is missing; rerun the sweep with --retry"):
        read_rows(tmp_path / "images.jsonl")


def test_non_finite_names_the_first_bad_field():
    assert non_finite({"a": {"value": 1.0, "n": 3}, "b": {"value": None}}) is None
    assert non_finite({"a": {"value": 1.0}, "b": {"ci": {"low": float("nan")}}})[0] == "b.ci.low"
