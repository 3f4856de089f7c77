"""Command line of the method: train one run, or sample from a checkpoint.

    python -m miro train --preset smoke --out runs/smoke [--set optim.steps=200 ...] [--dry-run]
    python -m miro sample runs/smoke --caption "a photo of a red circle" --samples 4 --out grid.png
    python -m miro annotate --samples 10000 --out runs/shapes-10k/annotations.parquet [--shard 0/4]

To resume a training run, run the same command again.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from miro.checks import check_run_config
from miro.config import to_dict, with_overrides
from miro.errors import CommandParser, MiroError, number, one_line_errors
from miro.presets import PRESETS, preset


def train_command(args: argparse.Namespace) -> None:
    from miro.data.build import build_training_set
    from miro.train import train

    cfg = with_overrides(preset(args.preset), args.set)
    check_run_config(cfg)
    if args.dry_run:
        print(json.dumps(to_dict(cfg), indent=2))
        return
    dataset = build_training_set(cfg, Path(args.data_root))
    last = train(cfg, dataset, Path(args.out))
    print(last)


def sample_command(args: argparse.Namespace) -> None:
    from torchvision.utils import save_image

    from miro.inference import load_generator
    from miro.sample import Branch, default_branches, sample
    from miro.seeding import seed_for

    if not Path(args.out).parent.is_dir():
        raise MiroError(f"--out {args.out}: the folder {Path(args.out).parent} does not exist; create it or choose another path")
    targets = dict(_pair(t) for t in args.target)
    gen = load_generator(args.checkpoint)
    s = gen.config.sample
    positive, negative = default_branches(s, gen.model.reward_names)
    if args.target:
        positive = Branch({**positive.targets, **targets})
    captions = [c for c in args.caption for _ in range(args.samples)]
    seeds = [seed_for(c, i, args.seed) for c in args.caption for i in range(args.samples)]
    x = sample(gen.model, gen.text_encoder, captions, seeds, gen.data_shape, positive=positive, negative=negative,
               guidance_scale=args.guidance if args.guidance is not None else s.guidance_scale, steps=s.steps,
               solver=s.solver, shift=s.time_shift)
    images = (gen.latent_space.decode(x) + 1) / 2
    save_image(images, args.out, nrow=args.samples)
    print(f"{args.out}: {len(images)} images, step {gen.step}, targets {positive.targets}")


def annotate_command(args: argparse.Namespace) -> None:
    import pandas as pd

    from miro.data.annotate import annotate, summarize
    from miro.data.build import SHAPES_SCORERS
    from miro.data.shapes import ShapesDataset, ShapesWorldConfig
    from miro.data.sources import DatasetSource, ImageFolderSource, WebDatasetSource

    index, count = _shard(args.shard)
    source: DatasetSource | ImageFolderSource | WebDatasetSource
    if args.source == "shapes":
        source = DatasetSource(ShapesDataset(ShapesWorldConfig(resolution=args.resolution), args.samples, args.seed))
    elif not args.path:
        raise MiroError(f"--path is required for --source {args.source}; give the image folder or shard location")
    else:
        source = ImageFolderSource(args.path) if args.source == "folder" else WebDatasetSource(args.path)
    scorers = args.scorer or list(SHAPES_SCORERS)
    annotate(source, scorers, Path(args.out), shard_index=index, shard_count=count,
             batch_size=args.batch_size)  # prints its one-line report
    summary = summarize(args.out)
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(f"\nper-reward statistics\n{summary['stats'].to_string()}\n\ncorrelations\n{summary['corr'].to_string()}")


def _shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count or 1)
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise MiroError(f'--shard "{text}" is not I/N with 0 <= I < N (e.g. 0/4 for the first of four shards)')
    return i, n


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
    t.set_defaults(run=train_command)
    s = sub.add_parser("sample", help="sample a grid of images from a checkpoint (or a run's last one)")
    s.add_argument("checkpoint")
    s.add_argument("--caption", action="append", required=True)
    s.add_argument("--samples", type=number(int, 1), default=4, help="images per caption (>= 1)")
    s.add_argument("--seed", type=number(int, 0), default=0)
    s.add_argument("--guidance", type=number(float), default=None, help="g in v = v_neg + g (v_pos - v_neg)")
    s.add_argument("--target", action="append", default=[], metavar="REWARD=VALUE", help="positive reward target")
    s.add_argument("--out", default="samples.png")
    s.set_defaults(run=sample_command)
    a = sub.add_parser("annotate", help="score a dataset with reward scorers into a parquet file (resumable)")
    a.add_argument("--source", default="shapes", choices=["shapes", "folder", "webdataset"])
    a.add_argument("--path", default="", help="image folder or webdataset shards (not for shapes)")
    a.add_argument("--samples", type=number(int, 1), default=10000, help="shapes world samples")
    a.add_argument("--resolution", type=number(int, 8), default=32, help="shapes world resolution")
    a.add_argument("--seed", type=number(int, 0), default=0)
    a.add_argument("--scorer", action="append", default=[], help="scorer name (default: every shapes reward)")
    a.add_argument("--shard", default="0/1", metavar="I/N", help="score only shard I of N (SLURM arrays)")
    a.add_argument("--batch-size", type=number(int, 1), default=256)
    a.add_argument("--out", required=True, help="annotation parquet file")
    a.set_defaults(run=annotate_command)
    args = parser.parse_args(argv)
    with one_line_errors():
        args.run(args)


if __name__ == "__main__":
    main()
