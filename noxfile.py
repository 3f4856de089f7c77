"""Sessions: `nox -l` lists them. Dependencies come from pyproject.toml (project + dependency groups)."""
from __future__ import annotations

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
def bench(session: nox.Session) -> None:
    """Time a RIN training step and guided sampling at the released settings (tiny config on CPU); prints JSON."""
    install_project(session)
    session.run("python", "-m", "miro.bench", *session.posargs)
