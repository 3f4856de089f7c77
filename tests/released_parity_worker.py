"""Reference side of tests/test_parity_released.py, run in its own process on the authors' package (miro-t2i 0.1.4).

    python released_parity_worker.py SITE WORKDIR [full]

SITE holds the package's unpacked `miro/` (its __init__ emptied: the pipeline import needs PIL and diffusers);
both packages are named `miro`, so this never runs beside ours. WORKDIR/inputs.safetensors holds the initial
noise of the sampling check (drawn by our per-sample seeding). Writes WORKDIR/released/ in the layout
`MiroPipeline.from_pretrained` reads and WORKDIR/reference.safetensors with every output to compare.
"""
import copy
import json
import sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])
import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from miro.models.loss import FlowMatchingLoss  # noqa: E402
from miro.models.networks.rin import CADRINTextCond  # noqa: E402
from miro.models.networks.transformers import RMSNorm  # noqa: E402
from miro.models.postprocessing import VAEPostProcessing  # noqa: E402
from miro.models.preconditioning import FlowPrecond  # noqa: E402
from miro.models.preprocessing import PrecomputedSDLatentPreconditioning  # noqa: E402
from miro.models.sampler import flow_euler_sampler  # noqa: E402
from miro.models.scheduler import LinearScheduler  # noqa: E402
from miro.utils.lr_scheduler import WarmupCosineDecayLR  # noqa: E402
from miro.utils.optimizers import Lamb  # noqa: E402

torch.set_num_threads(1)
work = Path(sys.argv[2])
FULL = len(sys.argv) > 3 and sys.argv[3] == "full"  # the released 360.4M network, forward check only
KEYS = ["clip_score", "aesthetic_score", "hpsv2_score"]
NET = dict(data_size=8, data_dim=64, num_input_channels=4, num_latents=16, latents_dim=64, label_dim=32,
           num_processing_layers=1, num_blocks=2, patch_size=2, num_cond_tokens=77, read_write_heads=4, compute_heads=4,
           use_cond_rin_block=True, concat_cond_token_to_latents=False, use_self_conditioning=True,
           num_text_registers=4, coherence_keys=KEYS, coherence_dropout=0.0, dropout_strategy="none")
PRE = dict(num_latents=16, latents_dim=64, do_gradnorm_reweighting=True, sigma_data=0.5)
B, L = 3, 6
if FULL:  # configs/experiment/multi_cad.yaml, as ../shared/bench/official_miro_throughput.py builds it
    KEYS = ["clip_score", "aesthetic_score", "image_reward_score", "pick_a_score_score", "hpsv2_score", "vqa_score", "sciscore_score"]
    NET.update(data_size=32, data_dim=512, num_latents=256, latents_dim=1024, label_dim=2048, num_processing_layers=4,
               num_blocks=4, read_write_heads=16, compute_heads=32, num_text_registers=16, coherence_keys=KEYS)
    PRE.update(num_latents=256, latents_dim=1024)
    B, L = 1, 16
OPT = dict(lr=1e-3, weight_decay=0.01, warmup=2, total=10, rate=0.8, step=6, ema=0.9999)

torch.manual_seed(0)
net, pre = CADRINTextCond(**NET), FlowPrecond(**PRE)
with torch.no_grad():  # random weights everywhere, so no zero-initialised layer hides a difference
    for p in [*net.parameters(), *pre.parameters()]:
        if p.dtype.is_floating_point:
            p.add_(torch.randn_like(p) * 0.1)
uncond = torch.randn(L, NET["label_dim"])
out = work / "released"
out.mkdir(parents=True, exist_ok=True)
# a time shift != 1, so that the import has to convert the released sampling grid (gamma, shifted from gamma = 0) into ours
SCHEDULER = {"start": 1, "end": 0, "shift": 3.0, "clip_min": 1e-9}
config = {"network": NET, "preconditioning": PRE, "data_preprocessing": {"channel_wise_normalisation": True, "vae_sample": True},
          "postprocessing": {"channel_wise_normalisation": True}, "max_text_len": L, "data_resolution": NET["data_size"],
          "scheduler": SCHEDULER}
(out / "config.json").write_text(json.dumps(config))
state = {**{f"network.{k}": v.clone() for k, v in net.state_dict().items()}, **{f"preconditioning.{k}": v.clone() for k, v in pre.state_dict().items()}}
save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"))
np.save(out / "uncond_embedding.npy", uncond.numpy())

g = torch.Generator().manual_seed(1)
text = torch.randn(B, L, NET["label_dim"], generator=g)
mask = torch.ones(B, L, dtype=torch.bool)
mask[0, 3:] = False
mask[B - 1, 5:] = False
rewards = torch.rand(B, len(KEYS), generator=g)
ref = {"text": text, "mask": mask, "rewards": rewards}


def cond_batch(extra):
    batch = {"text_tokens_embeddings": text.clone(), "text_tokens_mask": mask.clone(), **extra}
    batch.update({f"{k}_coherence": rewards[:, i].clone() for i, k in enumerate(KEYS)})
    return batch


# 0. latent scaling: SDXL posterior mean -> the flow's data and back (channel-wise statistics)
vae_mean = torch.randn(B, 4, 8, 8, generator=g) * 6 + 1
scaled = PrecomputedSDLatentPreconditioning(channel_wise_normalisation=True)({"vae_embeddings_mean": vae_mean})["x_0"]
ref.update(vae_mean=vae_mean, vae_scaled=scaled, vae_unscaled=VAEPostProcessing(channel_wise_normalisation=True)(scaled))

# 1. one forward in eval mode
net.eval()
size, latents = NET["data_size"], (NET["num_latents"], NET["latents_dim"])
x_t, gamma, prev = torch.randn(B, 4, size, size, generator=g), torch.rand(B, generator=g), torch.randn(B, *latents, generator=g)
with torch.no_grad():
    f_x, z = pre(net, cond_batch({"y": x_t.clone(), "gamma": gamma, "previous_latents": prev}))
ref.update(forward_x=x_t, forward_gamma=gamma, forward_prev=prev, forward_out=f_x, forward_latents=z)
if FULL:
    save_file({k: v.contiguous() for k, v in ref.items()}, str(work / "reference.safetensors"))
    print("ok")
    sys.exit(0)

# 2. one batch's loss in train mode, all randomness from one generator
net.train()
x0 = torch.randn(B, 4, 8, 8, generator=g)
loss_fn = FlowMatchingLoss(LinearScheduler(), uncond, conditioning_key="text_tokens", self_cond_rate=0.9,
                           cond_drop_rate=0.0, do_gradnorm_reweighting=True)
loss, _ = loss_fn(pre, net, None, cond_batch({"x_0": x0}), 0, generator=torch.Generator().manual_seed(7))
ref.update(loss_x0=x0, loss=loss.mean().detach().reshape(1))


# 3. one optimizer step, schedule and EMA (released DiffusionModule.configure_optimizers groups)
def get_parameter_names(model, forbidden):
    result = []
    for name, child in model.named_children():
        result += [f"{name}.{n}" for n in get_parameter_names(child, forbidden) if not isinstance(child, tuple(forbidden))]
    return result + list(model._parameters.keys())


decayed = [n for n in get_parameter_names(net, [torch.nn.LayerNorm, torch.nn.Embedding, RMSNorm]) if "bias" not in n]
groups = [{"params": [p for n, p in net.named_parameters() if n in decayed] + list(pre.parameters()),
           "weight_decay": OPT["weight_decay"], "layer_adaptation": True},
          {"params": [p for n, p in net.named_parameters() if n not in decayed], "weight_decay": 0.0, "layer_adaptation": False}]
ema = copy.deepcopy(net)
named = {**{f"network.{k}": p for k, p in net.named_parameters()}, **{f"preconditioning.{k}": p for k, p in pre.named_parameters()}}
for name, p in named.items():
    p.grad = torch.randn(p.shape, generator=g) if p.dtype.is_floating_point else None
    ref[f"before.{name}"] = p.detach().clone()
    if p.grad is not None:
        ref[f"grad.{name}"] = p.grad.clone()
opt = Lamb(groups, lr=OPT["lr"], eps=1e-8, weight_decay=OPT["weight_decay"], decouple=False)
sched = WarmupCosineDecayLR(opt, warmup_steps=OPT["warmup"], total_steps=OPT["total"], rate=OPT["rate"])
sched.step(OPT["step"])
opt.step()
with torch.no_grad():  # released EMA: constant decay from a copy of the initial weights
    for e, p in zip(ema.parameters(), net.parameters()):
        if p.dtype.is_floating_point:
            e.mul_(OPT["ema"]).add_(p, alpha=1 - OPT["ema"])
ref.update({f"after.{n}": p.detach().clone() for n, p in named.items()})
ref.update({f"ema.network.{n}": p.detach().clone() for n, p in ema.named_parameters()})
ref["lr"] = torch.tensor([opt.param_groups[0]["lr"]], dtype=torch.float64)

# 4. 50-step guided Euler sampling from the given noise on config.json's time grid, as MiroPipeline builds it (its
# negative: the stored embedding with an all-ones mask)
net.load_state_dict({k[len("network."):]: v for k, v in state.items() if k.startswith("network.")})
net.eval()
x_n = load_file(str(work / "inputs.safetensors"))["noise"]
with torch.no_grad():
    latents = flow_euler_sampler(
        lambda b: pre(net, b), {"y": x_n.clone(), "previous_latents": None, "text_tokens_embeddings": text.clone(),
                                "text_tokens_mask": mask.clone()},
        num_steps=50, scheduler=LinearScheduler(**config["scheduler"]), conditioning_keys=["text_tokens"],
        uncond_tokens={"text_tokens_embeddings": uncond.expand(B, -1, -1).clone(), "text_tokens_mask": torch.ones(B, L, dtype=torch.bool)},
        cfg_rate=3.0, coherence_keys=[f"{k}_coherence" for k in KEYS],
        coherence_values={f"{k}_coherence": 1.0 for k in KEYS}, uncoherence_values={f"{k}_coherence": 0.0 for k in KEYS},
        sampling_dtype=torch.float32)
ref["sample"] = latents
save_file({k: v.contiguous() for k, v in ref.items()}, str(work / "reference.safetensors"))
(work / "settings.json").write_text(json.dumps({"optim": OPT, "keys": KEYS, "cfg_rate": 3.0, "steps": 50, "shift": SCHEDULER["shift"]}))
print("ok")
