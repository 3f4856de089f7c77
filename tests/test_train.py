import json
import os
import shutil
import socket
from dataclasses import replace

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from core_fixtures import ToyDataset, tiny_config
from miro.checkpoint import checkpoint_dirs, load_checkpoint
from miro.config import ObjectiveConfig
from miro.data.loader import batch_indices
from miro.errors import MiroError
from miro.optim import lr_factor
from miro.train import train


def losses(run_dir):
    return [json.loads(line)["loss"] for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_tiny_model_overfits_a_tiny_conditional_dataset(tmp_path):
    cfg = tiny_config("tokens", steps=300, batch_size=16, lr=3e-3, warmup_steps=10)
    from dataclasses import replace
    cfg = replace(cfg, log_every=10, checkpoint_every=300)
    train(cfg, ToyDataset(16), tmp_path, progress=False)
    curve = losses(tmp_path)
    assert sum(curve[-3:]) / 3 < 0.4 * curve[0], curve


@pytest.mark.parametrize("optim", [{}, {"optimizer": "lamb", "ema_warmup": False, "cosine_rate": 0.8}], ids=["adamw", "released"])
def test_stop_and_resume_gives_bitwise_identical_weights(tmp_path, optim):
    cfg = tiny_config("tokens", steps=20, **optim)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(cfg, ToyDataset(), straight, progress=False)
    train(cfg, ToyDataset(), resumed, stop_at=10, progress=False)
    assert [p.name for p in checkpoint_dirs(resumed)] == ["step-0000010"]
    train(cfg, ToyDataset(), resumed, progress=False)  # the same command again
    for name in ("train.safetensors", "ema.safetensors"):
        a = load_file(straight / "checkpoints/step-0000020" / name)
        b = load_file(resumed / "checkpoints/step-0000020" / name)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_finished_run_is_not_trained_again(tmp_path):
    cfg = tiny_config("none", steps=20)  # checkpoints at 10 and 20: a resume must start from the last one
    last = train(cfg, ToyDataset(), tmp_path, progress=False)
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step-0000010", "step-0000020"]
    stamps = {p: p.stat().st_mtime_ns for p in [*(tmp_path / "checkpoints").rglob("*"), tmp_path / "log.jsonl"]}
    assert train(cfg, ToyDataset(), tmp_path, progress=False) == last
    assert {p: p.stat().st_mtime_ns for p in [*(tmp_path / "checkpoints").rglob("*"), tmp_path / "log.jsonl"]} == stamps


def test_a_half_written_checkpoint_is_never_picked_up(tmp_path):
    cfg = tiny_config("tokens", steps=10)
    train(cfg, ToyDataset(), tmp_path, stop_at=10, progress=False)
    (tmp_path / "checkpoints" / ".step-0000020.tmp-123").mkdir()  # a crash during a later write
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step-0000010"]


def test_a_damaged_checkpoint_names_the_missing_file_and_the_fix(tmp_path):
    cfg = tiny_config("tokens", steps=10)
    last = train(cfg, ToyDataset(), tmp_path, progress=False)
    (last / "ema.safetensors").unlink()
    with pytest.raises(MiroError, match="lacks ema.safetensors; delete the folder"):
        load_checkpoint(last)


def test_a_run_folder_refuses_a_different_config(tmp_path):
    train(tiny_config("tokens", steps=10), ToyDataset(), tmp_path, progress=False)
    with pytest.raises(MiroError, match="holds a run with a different config"):
        train(tiny_config("adaln", steps=10), ToyDataset(), tmp_path, progress=False)


def test_checkpoint_holds_manifest_and_optimizer_state_loadable_without_pickle(tmp_path):
    last = train(tiny_config("tokens", steps=10), ToyDataset(), tmp_path, progress=False)
    manifest = json.loads((last / "manifest.json").read_text())
    assert {"config", "git", "packages", "device", "seed", "conventions"} <= manifest.keys()
    assert manifest["conventions"]["guidance"].startswith("v = v_neg + g (v_pos - v_neg)")
    state = torch.load(last / "optimizer.pt", weights_only=True)
    assert {"optimizer", "schedule"} <= state.keys()


def test_paper_recipe_on_a_tiny_rin_trains(tmp_path):
    """RIN + LAMB + logit-normal t + self-conditioning + uncertainty weighting + preconditioning + bf16."""
    from dataclasses import replace
    cfg = tiny_config("tokens", "rin", steps=6, optimizer="lamb", precision="bf16")
    cfg = replace(cfg, objective=ObjectiveConfig(time_sampling="logit_normal", self_conditioning=0.9,
                                                 uncertainty_weighting=True, preconditioning=True))
    last = train(cfg, ToyDataset(), tmp_path, progress=False)
    weights = load_file(last / "train.safetensors")
    assert any(k.startswith("logvar.") for k in weights)
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_batches_cover_each_epoch_once_and_depend_only_on_position():
    n, size = 10, 4
    stream = [i for pos in range(0, 20, size) for i in batch_indices(pos, size, n, seed=3)]
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))
    assert batch_indices(8, size, n, seed=3) == stream[8:12]


def test_learning_rate_warms_up_then_decays():
    cfg = tiny_config("tokens", steps=100, warmup_steps=10).optim
    factors = [lr_factor(s, cfg) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[-1] == pytest.approx(cfg.min_lr_ratio, abs=1e-3)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:], strict=False))


def _ddp_worker(rank, world, port, run_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    cfg = tiny_config("tokens", "rin", steps=6, batch_size=8)  # the paper's backbone, with self-conditioning
    train(replace(cfg, objective=ObjectiveConfig(self_conditioning=0.9)), ToyDataset(), run_dir, progress=False)
    torch.distributed.destroy_process_group()


def test_runs_under_ddp_with_two_gloo_processes(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_ddp_worker, args=(2, port, tmp_path), nprocs=2, start_method="spawn")
    last = checkpoint_dirs(tmp_path)[-1]
    assert last.name == "step-0000006"
    assert json.loads((last / "manifest.json").read_text())["world_size"] == 2
    assert len(losses(tmp_path)) == 2  # rank 0 alone writes the log (steps 5 and 6)
    shutil.rmtree(tmp_path)
