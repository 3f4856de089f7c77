"""The shared helpers: safe and strict weight loading, input checks, runtime options, pre-scaling, entries."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from miro.errors import MiroError
from miro.rewards.real.images import to_pil_images
from miro.rewards.real.prescale import RELEASED, released_prescale
from miro.rewards.real.runtime import make_runtime
from miro.rewards.real.sources import HubFile, resolve
from miro.rewards.real.weights import load_state_dict, load_strict, sha256_file, sha256_folder


def test_safetensors_and_weights_only_pickles_load_the_same(tmp_path):
    state = torch.nn.Linear(3, 2).state_dict()
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": state}, tmp_path / "w.pt")
    from_safetensors = load_state_dict(tmp_path / "w.safetensors")
    from_pickle = load_state_dict(tmp_path / "w.pt", nested_key="state_dict")
    assert from_safetensors.keys() == from_pickle.keys() == state.keys()
    for key in state:
        torch.testing.assert_close(from_safetensors[key], from_pickle[key])


class Payload:
    """A pickled Python object, which weights-only loading must refuse."""


def test_pickles_with_python_objects_are_refused(tmp_path):
    torch.save({"weight": torch.zeros(1), "payload": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(MiroError, match="evil.pt is not a weights-only checkpoint"):
        load_state_dict(tmp_path / "evil.pt")


def test_missing_nested_key_is_named(tmp_path):
    torch.save({"model": {}}, tmp_path / "w.pt")
    with pytest.raises(MiroError, match="has no 'state_dict' entry"):
        load_state_dict(tmp_path / "w.pt", nested_key="state_dict")


def test_strict_load_lists_a_few_keys_and_counts_the_rest(tmp_path):
    model = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(4)])
    state = {f"other.{i}": torch.zeros(1) for i in range(6)}
    with pytest.raises(MiroError) as caught:
        load_strict(model, state, tmp_path / "w.pt")
    message = str(caught.value)
    assert "\n" not in message
    assert "missing keys 0.bias, 0.weight, 1.bias, 1.weight (+4 more)" in message
    assert "unexpected keys other.0, other.1, other.2, other.3 (+2 more)" in message


def test_strict_load_copies_matching_weights(tmp_path):
    source, target = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    load_strict(target, source.state_dict(), tmp_path / "w.pt")
    torch.testing.assert_close(target.weight, source.weight)


def test_hashes_are_content_hashes(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    assert sha256_file(tmp_path / "a") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    before = sha256_folder(tmp_path)
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "lock").write_bytes(b"x")  # hidden download bookkeeping does not count
    assert sha256_folder(tmp_path) == before
    (tmp_path / "a").write_bytes(b"abd")
    assert sha256_folder(tmp_path) != before


def test_missing_file_without_download_permission(tmp_path):
    source = HubFile("org/repo", "model.pt")
    hint = r"no checkpoint given: pass checkpoint=PATH \(get it with: huggingface-cli download org/repo model.pt"
    with pytest.raises(MiroError, match=hint):
        resolve(None, source, "checkpoint", allow_download=False)
    assert resolve(tmp_path, source, "checkpoint", allow_download=False) == tmp_path


@pytest.mark.parametrize(
    ("images", "prompts", "match"),
    [
        (torch.rand(2, 4, 8, 8), ["a", "b"], r"\(B, 3, H, W\); got \(2, 4, 8, 8\)"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), ["a", "b"], "divide uint8 by 255"),
        (torch.rand(2, 3, 8, 8), ["a"], "got 2 images but 1 prompts"),
        (torch.rand(2, 3, 8, 8) * 2 - 1, ["a", "b"], r"map \[-1, 1\] with \(x \+ 1\) / 2"),
    ],
)
def test_bad_batches_are_refused(images, prompts, match):
    with pytest.raises(MiroError, match=match):
        to_pil_images(images, prompts)


def test_quantisation_round_trips_8_bit_pixels():
    pixels = torch.arange(256, dtype=torch.uint8).repeat(3, 4, 1).unsqueeze(0)  # (1, 3, 4, 256)
    image = to_pil_images(pixels.float() / 255, ["p"])[0]
    assert image.mode == "RGB"
    assert torch.equal(torch.from_numpy(np.array(image)).permute(2, 0, 1), pixels[0])


def test_runtime_options_are_validated():
    assert make_runtime("cpu", "bfloat16").dtype_name == "bfloat16"
    with pytest.raises(MiroError, match='unknown dtype "float61" \\(did you mean "float16"\\?\\)'):
        make_runtime("cpu", "float61")
    with pytest.raises(MiroError, match='bad device "gpu"'):
        make_runtime("gpu")


def test_autocast_runs_the_forward_in_the_chosen_dtype():
    layer = torch.nn.Linear(4, 4)
    with make_runtime("cpu", "bfloat16").autocast():
        assert layer(torch.randn(2, 4)).dtype == torch.bfloat16
    with make_runtime("cpu", "float32").autocast():
        assert layer(torch.randn(2, 4)).dtype == torch.float32


def test_released_prescaling_follows_the_method_table():
    scores = torch.tensor([-2.0, 0.0, 2.0])
    torch.testing.assert_close(released_prescale("image_reward")(scores), torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(released_prescale("aesthetic")(torch.tensor([6.5])), torch.tensor([0.65]))
    torch.testing.assert_close(released_prescale("hpsv2")(torch.tensor([0.27])), torch.tensor([0.27]))
    assert RELEASED["jina_clip"].key == "clip_score"
    with pytest.raises(MiroError, match='unknown scorer with a released reward key "clip_score"'):
        released_prescale("clip_score")  # OpenAI CLIP is a held-out metric, not a reward


def test_every_entry_points_at_a_factory():
    from miro.rewards import registry

    importlib.import_module("miro.rewards.real_entries")
    names = {"hpsv2", "image_reward", "pickscore", "sciscore", "aesthetic", "clip_score", "jina_clip", "vqascore"}
    assert names <= set(registry.scorer_names())
    for name in names:
        module_name, factory = registry.SCORERS[name].split(":")
        assert callable(getattr(importlib.import_module(module_name), factory))
    assert set(RELEASED) <= names
