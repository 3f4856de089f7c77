"""Sessions: `nox -l` lists them. Dependencies come from pyproject.toml (project + dependency groups)."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_venv = "yes"
PYPROJECT = nox.project.load_toml("pyproject.toml")


def install_project(session: nox.Session, *groups: str) -> None:
    session.install("-e", ".", *nox.project.dependency_groups(PYPROJECT, *groups))
    # reward packages whose declared requirements are wrong for this stack (runtime pytest pins, old timm):
    # installed without their dependencies, see the comments in the file
    session.install("--no-deps", "-r", "requirements-nodeps.txt")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the offline CPU test suite (what CI runs)."""
    install_project(session, "test")
    session.run("pytest", *session.posargs, env={"OMP_NUM_THREADS": "1"})


@nox.session(default=False)
def lint(session: nox.Session) -> None:
    """Check style with ruff and types with mypy on miro/ and harness/."""
    install_project(session, "lint")
    session.run("ruff", "check", ".")
    session.run("mypy", "miro", "harness")


@nox.session(default=False)
def sweep(session: nox.Session) -> None:
    """Run a sweep end to end (default: the embedded shapes world, locally): nox -s sweep -- [sweep] [options]."""
    install_project(session)
    session.run("python", "-m", "harness.sweep", *session.posargs)


@nox.session(default=False)
def report(session: nox.Session) -> None:
    """Rebuild a sweep's HTML report from its stored results (never retrains): nox -s report -- <sweep dir>."""
    install_project(session)
    session.run("python", "-m", "reports", *session.posargs)


@nox.session(default=False)
def docs(session: nox.Session) -> None:
    """Write the README's results table and docs/report.png from a finished sweep: nox -s docs -- [runs/sweeps/default]."""
    install_project(session)
    sweep = session.posargs[0] if session.posargs else "runs/sweeps/default"
    session.run("python", "-m", "reports.readme", sweep, "--readme", "README.md", "--screenshot", "docs/report.png")


# the authors' benchmark script, from the project's shared folder (inside or beside the checkout)
REFERENCE_SCRIPT = next((p for p in (Path("shared"), Path("../shared")) if (p / "bench").is_dir()), Path("../shared")) \
    / "bench" / "official_miro_throughput.py"
REFERENCE_SITE = Path(".bench_ref")  # git-ignored: the authors' package is downloaded, never committed


def authors_package(session: nox.Session) -> None:
    """Unpack the authors' `miro` package (PyPI miro-t2i 0.1.4) into .bench_ref/, as the reference script expects."""
    if (REFERENCE_SITE / "miro").is_dir():
        return
    session.run("python", "-m", "pip", "download", "--no-deps", "-d", str(REFERENCE_SITE), "miro-t2i==0.1.4")
    with zipfile.ZipFile(REFERENCE_SITE / "miro_t2i-0.1.4-py3-none-any.whl") as wheel:
        wheel.extractall(REFERENCE_SITE, [n for n in wheel.namelist() if n.startswith("miro/")])
    (REFERENCE_SITE / "miro" / "__init__.py").write_text("")  # skip the pipeline import (needs PIL, diffusers)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Ours beside the authors' network (training batch 128, sampling batch 64; tiny on a CPU), or the data feed: one JSON line.

    nox -s bench [-- --compile] ; nox -s bench -- data [--samples N] ; other options: python -m miro.bench [data] --help.
    Without ../shared/bench (the authors' benchmark script) only ours is timed.
    """
    install_project(session, "bench")
    args = list(session.posargs)
    if REFERENCE_SCRIPT.is_file() and "--reference" not in args and args[:1] not in (["data"], ["feed"]):
        authors_package(session)
        args += ["--reference", str(REFERENCE_SCRIPT), "--reference-site", str(REFERENCE_SITE)]
    session.run("python", "-m", "miro.bench", *args, env={"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
