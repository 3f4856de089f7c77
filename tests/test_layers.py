"""Layers import one way: miro <- harness <- reports, and studies (ablations/, users' files) import harness and
miro; harness names the report and the built-in studies without importing them (see the README's layout table)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"miro": {"harness", "ablations", "reports"}, "harness": {"ablations", "reports"}, "reports": {"ablations"}}


def imported_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_no_layer_above_it(layer):
    offenders = {str(p.relative_to(ROOT)): sorted(imported_packages(p) & FORBIDDEN[layer]) for p in (ROOT / layer).rglob("*.py")}
    assert {p: names for p, names in offenders.items() if names} == {}
