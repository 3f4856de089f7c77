"""Tests against the project's single-node SLURM (scripts/slurm/start.sh). Without a running cluster they skip,
saying why; with the CI environment variable set a missing cluster fails them instead (CI must start it)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def cluster_problem() -> str | None:
    """Why the test cluster cannot take jobs, or None when it can."""
    if shutil.which("sbatch") is None:
        return "sbatch is not on PATH"
    checks = {"slurmctld": ["scontrol", "ping"], "a node": ["sinfo", "-h", "-o", "%T"], "accounting (slurmdbd)": ["sacct", "-n", "-X"]}
    for what, command in checks.items():
        result = subprocess.run(command, capture_output=True, text=True, timeout=20)
        if result.returncode != 0 or "DOWN" in result.stdout:
            said = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
            return f"{what} does not answer ({' '.join(command)}: {said[0][:200]})"
    if not {"idle", "mixed", "allocated", "completing"} & set(subprocess.run(checks["a node"], capture_output=True, text=True).stdout.split()):
        return "no node is up"
    return None


@pytest.fixture(scope="session", autouse=True)
def slurm_cluster() -> None:
    problem = cluster_problem()
    if problem is None:
        return
    message = f"SLURM test cluster not usable: {problem}; start it with `bash scripts/slurm/start.sh` (as root)"
    if os.environ.get("CI"):
        pytest.fail(message + " -- CI must start the cluster before the tests", pytrace=False)
    print(message)
    pytest.skip(message)
