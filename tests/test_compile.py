"""torch.compile (optim.compile, sample.compile) against eager on one tiny RIN, on the CPU (inductor).

Tolerances, float32 on the CPU: a forward and a sampler run agree to rtol 1e-4 / atol 1e-5 (kernel fusion
reorders float sums); the logged losses of two training steps to rel 1e-5; weights to one learning rate:
the q/k-norm biases have a gradient that is zero in exact arithmetic (softmax ignores a shift shared by all
keys), so AdamW's normalised step turns rounding noise into moves of up to lr either way. Compiled graphs
are cached per code object, so the tests share them by using the same shapes. The sampler's CUDA-graph
mode (`reduce-overhead`) compiles like `default` on a CPU, which is what the CPU tests check; its graph
replay is checked by the CUDA-only test.
"""
import copy
import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from core_fixtures import REWARDS, ToyDataset, randomize, tiny_config
from miro.compilation import compile_network
from miro.config import OptimConfig, SampleConfig
from miro.errors import MiroError
from miro.nets.flow_model import build_model
from miro.sample import Branch, sample
from miro.text import ShapesTextEncoder
from miro.train import train

CFG = tiny_config("tokens", "rin")
CAPTIONS, SEEDS = ["a red circle", "a blue square"], [3, 4]


@pytest.fixture(scope="module")
def rin_and_encoder():
    encoder = ShapesTextEncoder(CFG.text.dim, CFG.text.max_tokens)
    model = build_model(CFG.model, CFG.rewards, CFG.objective, encoder.dim)
    randomize(model)
    return model.eval(), encoder


def guided(model, encoder, **kw):
    return sample(model, encoder, CAPTIONS, SEEDS, (3, 16, 16), positive=Branch(dict.fromkeys(REWARDS, 1.0)),
                  negative=Branch(dict.fromkeys(REWARDS, 0.0), null_caption=True), guidance_scale=3.0, steps=3, **kw)


@torch.no_grad()
def test_compiled_network_matches_eager_in_one_graph(rin_and_encoder):
    model, encoder = rin_and_encoder
    text, mask = encoder.encode(CAPTIONS * 2)  # the guided sampler's batch: both branches
    args = (torch.randn(4, 3, 16, 16), torch.rand(4), text, mask, torch.rand(4, 2), torch.ones(4, 2, dtype=torch.bool))
    compiled = compile_network(model, "reduce-overhead")  # fullgraph: a graph break would raise here
    v, z = model(*args)
    cv, cz = compiled(*args)
    torch.testing.assert_close(cv, v, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(compiled(*args, prev_latents=cz)[0], model(*args, prev_latents=z)[0], rtol=1e-4, atol=1e-5)
    assert compiled.state_dict().keys() != model.state_dict().keys()  # the wrapper prefixes; train saves `model`


def test_compiled_sampler_matches_eager(rin_and_encoder):
    eager = guided(*rin_and_encoder)
    torch.testing.assert_close(guided(*rin_and_encoder, compile_mode="reduce-overhead"), eager, rtol=1e-4, atol=1e-5)
    assert not torch.equal(guided(*rin_and_encoder, precision="bf16"), eager)  # the precision option reaches the network


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("solver", ["euler", "heun"])  # Heun keeps one output across two graph replays
def test_cuda_graph_sampler_matches_eager_on_a_gpu(rin_and_encoder, solver):
    model, encoder = rin_and_encoder
    cuda = copy.deepcopy(model).cuda()
    for negative in (None, Branch(dict.fromkeys(REWARDS, 0.0), null_caption=True)):
        run = dict(positive=Branch(dict.fromkeys(REWARDS, 1.0)), negative=negative, guidance_scale=3.0, steps=3,
                   solver=solver, device="cuda", precision="fp32")
        eager = sample(cuda, encoder, CAPTIONS, SEEDS, (3, 16, 16), **run)
        graphs = sample(cuda, encoder, CAPTIONS, SEEDS, (3, 16, 16), compile_mode="reduce-overhead", **run)
        torch.testing.assert_close(graphs, eager, rtol=1e-3, atol=1e-4)


def test_compiled_training_matches_eager_and_saves_plain_keys(tmp_path):
    cfg = replace(CFG, optim=replace(CFG.optim, steps=2), checkpoint_every=2, log_every=1)
    train(cfg, ToyDataset(16), tmp_path / "eager", progress=False)
    fast = replace(cfg, optim=replace(cfg.optim, compile=True))
    train(fast, ToyDataset(16), tmp_path / "compiled", progress=False)
    losses = [[json.loads(line)["loss"] for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
              for run in ("eager", "compiled")]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for name in ("train.safetensors", "ema.safetensors"):
        a, b = (load_file(tmp_path / run / "checkpoints/step-0000002" / name) for run in ("eager", "compiled"))
        assert a.keys() == b.keys() and not any(k.startswith("_orig_mod") for k in b)
        for key in a:
            torch.testing.assert_close(b[key], a[key], rtol=0, atol=cfg.optim.lr, msg=key)


def test_compile_mode_is_validated():
    with pytest.raises(MiroError, match="optim.compile_mode = 'fast' is not allowed"):
        OptimConfig(compile_mode="fast")
    with pytest.raises(MiroError, match="sample.precision"):
        SampleConfig(precision="fp16")
