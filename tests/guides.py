"""The commands each guide in docs/ ends with (the last ```bash block, under its "## Try it" heading), run as a
reader runs them: by bash, one after another, in a fresh folder standing for a checkout's root, with `python` the
test environment's interpreter and the project importable."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def try_it(guide: str) -> list[str]:
    """The commands of docs/<guide>.md's "## Try it" block, one a line (comments and blank lines dropped)."""
    text = (DOCS / f"{guide}.md").read_text()
    section = text.split("\n## Try it\n", 1)
    assert len(section) == 2, f"docs/{guide}.md has no '## Try it' section"
    blocks = re.findall(r"```bash\n(.*?)```", section[1], re.S)
    assert blocks, f"docs/{guide}.md's Try it section has no ```bash block"
    return [line for line in blocks[-1].splitlines() if line.strip() and not line.lstrip().startswith("#")]


def workspace(folder: Path) -> Path:
    """A folder to run a guide's commands in, as a checkout's root: `examples` and `tests` link to the project's."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("examples", "tests"):
        if not (folder / name).exists():
            (folder / name).symlink_to(ROOT / name)
    return folder


def environment(folder: Path) -> dict[str, str]:
    bin_dir = folder / ".bin"
    bin_dir.mkdir(exist_ok=True)
    if not (bin_dir / "python").exists():  # a script, not a link: a venv's interpreter finds its packages by its path
        (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        (bin_dir / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    env.pop("MIRO_WEIGHTS", None)
    return env


def run(commands: list[str], folder: Path, timeout: int = 600) -> str:
    """Run `commands` with bash in `folder` (stopping at the first failure); their output. A failure fails the test
    with the command and the end of its output."""
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(commands)], cwd=workspace(folder), env=environment(folder),
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{commands}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout
