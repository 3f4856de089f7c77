"""glibc's malloc keeps freed activations in the heap: checked by counting page faults, which do not depend on timing."""
from __future__ import annotations

import subprocess
import sys

import pytest

from miro import allocator

# Five training steps (forward and backward) of the shapes default's U-Net at its batch size, which free and
# reallocate activations of 0.1-4 MiB; prints the minor page faults they took.
_STEPS = """
import resource, sys, torch
from miro.allocator import keep_freed_memory
from miro.nets.flow_model import build_model
from miro.presets import shapes
applied = keep_freed_memory() if sys.argv[1] == "tuned" else None
cfg = shapes()
model = build_model(cfg.model, cfg.rewards, cfg.objective, 64)
b = 32
inputs = (torch.randn(b, 3, 32, 32), torch.rand(b), torch.randn(b, 7, 64), torch.ones(b, 7, dtype=torch.bool),
          torch.rand(b, 3), torch.ones(b, 3, dtype=torch.bool))
def step():
    v, _ = model(*inputs)
    v.square().mean().backward()
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", _STEPS, mode], capture_output=True, text=True, check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc only")
def test_keeping_freed_memory_removes_most_page_faults_of_a_training_step() -> None:
    applied, tuned = _faults("tuned")
    _, default = _faults("default")
    assert applied == "True"
    assert tuned < default / 5  # measured: about 1,300 against 20,000 faults a step of this loop


def test_other_c_libraries_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    assert allocator.keep_freed_memory() is False
