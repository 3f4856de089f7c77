"""Command line of the method: train one run, or sample from a checkpoint.

    python -m miro train --preset smoke --out runs/smoke [--set optim.steps=200 ...] [--dry-run]
    python -m miro sample runs/smoke --caption "a photo of a red circle" --samples 4 --out grid.png
    python -m miro annotate --samples 10000 --out runs/shapes-10k/annotation [--shard 0/4]
    python -m miro precompute --source folder --path DATA --weights weights.toml --out runs/features
    python -m miro weights check weights.toml
    python -m miro weights tiny tiny-weights          (or: weights fetch weights, on a login node with internet)
    python -m miro example-data example-data
    python -m miro import-released downloads/miro --out runs/released-miro --text-encoder T5_DIR --vae VAE_DIR

To resume a training run, run the same command again.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from miro.allocator import keep_freed_memory
from miro.checks import check_run_config
from miro.cli_data import add_commands
from miro.cli_weights import add_commands as add_weights_commands
from miro.config import to_dict, with_overrides
from miro.errors import RESUME, CommandParser, MiroError, number, one_line_errors
from miro.presets import PRESETS, preset


def train_command(args: argparse.Namespace) -> None:
    from miro import weights_file
    from miro.data.build import build_training_set
    from miro.distributed import default_device, init_distributed
    from miro.run_checks import check_latent_shape, check_paths, check_time
    from miro.train import train

    weights = weights_file.load(args.weights)
    given = dict(item.split("=", 1) for item in args.set if "=" in item)
    paths = {"text.path": weights.path("t5"), "latents.vae_path": weights.path("vae"), **given}  # "" when unnamed
    base = preset(args.preset, paths)
    cfg = with_overrides(base, weights.config_overrides(base, args.set) + args.set)
    check_run_config(cfg)
    check_time(cfg, default_device(init_distributed()), args.force)  # a dry run refuses what the run refuses
    check_paths(cfg)
    if args.dry_run:
        print(json.dumps(to_dict(cfg), indent=2))
        return
    check_latent_shape(cfg)
    dataset = build_training_set(cfg, Path(args.data_root))
    if hasattr(dataset, "summary"):
        print(f"training data: {dataset.summary()}", file=sys.stderr)  # what was left out, and why
    last = train(cfg, dataset, Path(args.out), workers=args.workers)
    print(last)


def sample_command(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from torchvision.utils import save_image

    from miro import weights_file
    from miro.inference import load_generator
    from miro.sample import guidance_branches, sample
    from miro.seeding import seed_for

    if not Path(args.out).parent.is_dir():
        raise MiroError(f"--out {args.out}: the folder {Path(args.out).parent} does not exist; create it or choose another path")
    if Path(args.out).is_dir() or Path(args.out).suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise MiroError(f"--out {args.out} is not an image file name; give one like grid.png (.png, .jpg or .webp)")
    targets = dict(_pair(t) for t in args.target)
    gen = load_generator(args.checkpoint, weights=weights_file.load(args.weights))
    s = gen.config.sample
    s = replace(s, positive_targets={**s.positive_targets, **targets})
    positive, negative = guidance_branches(s, gen.model.reward_names)
    captions = [c for c in args.caption for _ in range(args.samples)]
    seeds = [seed_for(c, i, args.seed) for c in args.caption for i in range(args.samples)]
    x = sample(gen.model, gen.text_encoder, captions, seeds, gen.data_shape, positive=positive, negative=negative,
               guidance_scale=args.guidance if args.guidance is not None else s.guidance_scale, steps=s.steps,
               solver=s.solver, shift=s.time_shift, device=gen.device, precision=s.precision,
               compile_mode=s.compile_mode if s.compile else None)
    images = (gen.latent_space.decode(x) + 1) / 2
    save_image(images, args.out, nrow=args.samples)
    print(f"{args.out}: {len(images)} images, step {gen.step}, targets {positive.targets}")


def import_command(args: argparse.Namespace) -> None:
    from miro.released import import_all

    for checkpoint in import_all(Path(args.folder), Path(args.out), text_path=args.text_encoder, vae_path=args.vae, step=args.step):
        print(checkpoint)


def _pair(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        raise MiroError(f'--target "{text}" is not of the form name=value (e.g. shapes_quality=0.5)') from None
    if not 0 <= number <= 1:
        raise MiroError(f'--target "{text}": a reward target must lie in [0, 1] (1 = the best bin)')
    return name, number


def main(argv: Sequence[str] | None = None) -> None:
    parser = CommandParser(prog="python -m miro", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train (or resume) one run")
    t.add_argument("--preset", default="smoke", choices=sorted(PRESETS))
    t.add_argument("--out", required=True, help="run folder (rerun the same command to resume)")
    t.add_argument("--data-root", default="runs/data", help="where shared, prepared data lives")
    t.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config field")
    t.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    t.add_argument("--weights", default="", help="weights file (TOML) naming the T5 and VAE folders (default $MIRO_WEIGHTS)")
    t.add_argument("--force", action="store_true", help="start even if the estimated time on this device is absurd")
    t.add_argument("--workers", type=number(int, 0), default=None,
                   help="data-loading processes per rank (default: none for in-memory data, else one per core beside the "
                        "rank's own, at most 8); does not change what is trained")
    t.set_defaults(run=train_command)
    s = sub.add_parser("sample", help="sample a grid of images from a checkpoint (or a run's last one)")
    s.add_argument("checkpoint")
    s.add_argument("--caption", action="append", required=True)
    s.add_argument("--samples", type=number(int, 1), default=4, help="images per caption (>= 1)")
    s.add_argument("--seed", type=number(int, 0), default=0)
    s.add_argument("--guidance", type=number(float), default=None, help="g in v = v_neg + g (v_pos - v_neg)")
    s.add_argument("--target", action="append", default=[], metavar="REWARD=VALUE", help="positive reward target")
    s.add_argument("--out", default="samples.png")
    s.add_argument("--weights", default="", help="weights file (TOML; default $MIRO_WEIGHTS): T5 / VAE folders when the checkpoint's are not here")
    s.set_defaults(run=sample_command)
    r = sub.add_parser("import-released", help="turn a released MIRO checkpoint folder into a run folder")
    r.add_argument("folder", help="folder with config.json, model.safetensors, uncond_embedding.npy (or variant subfolders that have them)")
    r.add_argument("--out", required=True, help="run folder to write")
    r.add_argument("--text-encoder", required=True, help="local FLAN-T5-XL folder (the released text encoder)")
    r.add_argument("--vae", required=True, help="local SDXL VAE folder (AutoencoderKL)")
    r.add_argument("--step", type=int, default=0, help="training step to record for the checkpoint")
    r.set_defaults(run=import_command)
    add_commands(sub)
    add_weights_commands(sub)
    args = parser.parse_args(argv)
    keep_freed_memory()
    with one_line_errors(on_interrupt=RESUME):
        args.run(args)


if __name__ == "__main__":
    main()
