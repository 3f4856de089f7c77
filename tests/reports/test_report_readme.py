"""The docs build's table: the report's main table cut to the columns a newcomer reads first, written between the
README's markers (and nowhere else), and the README keeps those markers."""
from __future__ import annotations

from pathlib import Path

import pytest

from miro.errors import MiroError
from reports.build import Built
from reports.readme import END, START, main, markdown_table, replace_results

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_table_has_a_row_per_arm_with_intervals_where_they_matter(built: Built) -> None:
    lines = markdown_table(built.html.parent).splitlines()
    assert lines[0] == ("| arm | GenEval | shape-agnostic | shape read (chance 1/3) | quality | alignment | size | "
                        "cleanliness (held out) |")
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| baseline", "| miro", "| only-alignment", "| only-quality", "| only-size"]
    geneval, agnostic = lines[3].split(" | ")[1:3]
    assert geneval.count("[") == 1 and "[" not in agnostic  # GenEval with its 95% interval, shape-agnostic without


def test_only_the_marked_table_is_replaced(built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold table\n{END}\nafter\n")
    assert main([str(built.html.parent), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith(f"intro\n{START}\n| arm |") and text.endswith(f"|\n{END}\nafter\n") and "old table" not in text
    assert capsys.readouterr().out.startswith("| arm |")
    readme.write_text("no markers\n")
    with pytest.raises(MiroError, match="needs the two lines"):
        replace_results(readme, "| table |")
    assert README.read_text().count(START) == 1 and README.read_text().count(END) == 1
