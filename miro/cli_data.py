"""The data commands of `python -m miro`: annotate, bins, precompute.

    python -m miro annotate --source folder --path DATA --scorer pickscore --scorer hpsv2 --weights weights.toml \\
        --out runs/ann --shard 0/4 [--device cuda --dtype bfloat16 --batch-size 64]
    python -m miro annotate --merge --out runs/ann [--include vqascore-annotations.parquet]
    python -m miro bins runs/ann --rewards pickscore,hpsv2
    python -m miro precompute --source folder --path DATA --weights weights.toml --out runs/features --resolution 256 --shard 0/4

An annotation folder holds one file per shard (shard-IIIII-of-NNNNN.parquet) and, once every shard is
done, the assembled annotations.parquet (assembled by the last shard to finish, or by --merge). Rerun any
command to resume it.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from miro import weights_file
from miro.errors import MiroError, did_you_mean, number

ASSEMBLED = "annotations.parquet"


def parse_shard(text: str) -> tuple[int, int]:
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count or 1)
    except ValueError:
        raise MiroError(f'--shard "{text}" is not I/N (e.g. 0/4: the first of four shards)') from None
    if not 0 <= i < n:
        raise MiroError(f"--shard {text}: I must lie in [0, N)")
    return i, n


def data_source(args: argparse.Namespace) -> Any:
    from miro.data.shapes import ShapesDataset, ShapesWorldConfig
    from miro.data.sources import DatasetSource, ImageFolderSource, WebDatasetSource

    if args.source == "shapes":
        return DatasetSource(ShapesDataset(ShapesWorldConfig(resolution=args.resolution), args.samples, args.seed))
    if not args.path:
        raise MiroError(f"--path is required for --source {args.source}; give the image folder or shard location")
    return ImageFolderSource(args.path) if args.source == "folder" else WebDatasetSource(args.path)


def scorer_options(name: str, weights: weights_file.WeightsFile, given: dict[str, dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """A scorer's factory options: the weights file's, then --device/--dtype/--allow-download, then --scorer-option."""
    parameters = weights_file.scorer_parameters(name)
    options: dict[str, Any] = dict(weights.scorer_options(name))
    for flag in ("device", "dtype", "allow_download"):
        if flag in parameters and getattr(args, flag) not in (None, False):
            options[flag] = getattr(args, flag)
    options.update(given.get(name, {}))
    if problem := weights_file.scorer_option_problem(name, options):
        raise MiroError(problem)
    return options


def shard_file(folder: Path, index: int, count: int) -> Path:
    return folder / f"shard-{index:05d}-of-{count:05d}.parquet"


def assemble(folder: Path, count: int | None = None) -> Path:
    """Join every finished shard file (and included files) into folder/annotations.parquet."""
    from miro.data.annotate import merge_annotations

    shards = sorted(folder.glob("shard-*-of-*.parquet"))
    counts = {int(p.stem.rsplit("-of-", 1)[1]) for p in shards} if count is None else {count}
    if not counts:
        raise MiroError(f"{folder} holds no shard files; run annotate --out {folder} (with --shard I/N for each I) first")
    if len(counts) != 1:
        raise MiroError(f"{folder} holds shards of {len(counts)} shardings {sorted(counts)}; annotate with one --shard I/N for every I, or clean the folder")
    n = counts.pop()
    unfinished = [i for i in range(n) if not shard_file(folder, i, n).is_file() or (folder / f"{shard_file(folder, i, n).name}.parts").is_dir()]
    if unfinished:
        listed = ", ".join(f"{i}/{n}" for i in unfinished[:8]) + (" ..." if len(unfinished) > 8 else "")
        raise MiroError(f"{folder}: shards {listed} are not finished; run annotate --shard for them (the same command resumes) before --merge")
    files = [shard_file(folder, i, n) for i in range(n)] + sorted(folder.glob("include-*.parquet"))
    return merge_annotations(files, folder / ASSEMBLED)


def annotate_command(args: argparse.Namespace) -> None:
    import pandas as pd

    from miro.data.annotate import annotate, summarize
    from miro.data.build import SHAPES_SCORERS

    out = Path(args.out)
    if out.suffix == ".parquet":
        raise MiroError(f"--out {out} is a file; annotate writes a folder (shard files + {ASSEMBLED}): pass --out {out.with_suffix('')}")
    weights = weights_file.load(args.weights)
    if args.merge:
        out.mkdir(parents=True, exist_ok=True)
        for extra in args.include:
            _include(out, Path(extra))
        print(assemble(out))
        return
    if args.include:
        raise MiroError("--include adds an annotation made elsewhere (e.g. VQAScore in its own environment); use it with --merge")
    index, count = parse_shard(args.shard)
    given = weights_file.parse_scorer_option(args.scorer_option)
    names = args.scorer or (list(weights.scorers) if weights.scorers else list(SHAPES_SCORERS))
    for name in given:
        if name not in names:
            raise MiroError(f'--scorer-option names scorer "{name}", which is not annotated here{did_you_mean(name, names)}; add --scorer {name} or fix the name')
    from miro.rewards.registry import load_scorer

    scorers = []
    for name in names:
        try:
            scorers.append(load_scorer(name, **scorer_options(name, weights, given, args)))
        except MiroError as err:
            raise MiroError(f"scorer {name}: {err} (options: --scorer-option {name}.KEY=VALUE or [scorers.{name}] in the weights file)") from None
    annotate(data_source(args), scorers, shard_file(out, index, count), shard_index=index, shard_count=count,
             batch_size=args.batch_size, max_failed=args.max_failed, workers=args.workers)  # prints its one-line report
    try:
        assembled = assemble(out, count)
    except MiroError as waiting:
        print(f"shard {index}/{count} done; {waiting}")
        return
    summary = summarize(assembled)
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(f"{assembled}\n\nper-reward statistics\n{summary['stats'].to_string()}\n\ncorrelations\n{summary['corr'].to_string()}")


def _include(folder: Path, path: Path) -> None:
    """Copy an annotation made elsewhere into the folder, so every later assembly keeps its columns."""
    from miro.data.annotate import read_annotation

    read_annotation(path)  # refuses a missing or unreadable file now
    shutil.copyfile(path, folder / f"include-{path.parent.name}-{path.stem}.parquet")


def precompute_command(args: argparse.Namespace) -> None:
    from miro.data.precompute import PrecomputeOptions, precompute

    weights = weights_file.load(args.weights)
    index, count = parse_shard(args.shard)
    vae = "" if args.no_latents else (args.vae or weights.path("vae"))
    t5 = "" if args.no_text else (args.t5 or weights.path("t5"))
    if not (vae or t5):
        raise MiroError("precompute has nothing to do: name [vae] / [t5] in the weights file (--weights or $MIRO_WEIGHTS), or pass --vae DIR / --t5 DIR")
    options = PrecomputeOptions(
        vae_path=vae, text_path=t5,
        resolution=args.resolution, max_tokens=args.max_tokens, batch_size=args.batch_size, device=args.device, dtype=args.dtype,
        max_failed=args.max_failed, workers=args.workers,
    )
    precompute(data_source(args), args.out, options, shard_index=index, shard_count=count)


def bins_command(args: argparse.Namespace) -> None:
    from miro.data.training_set import fit_bins
    from miro.rewards.binning import BinningOptions, bins_beside

    annotation = Path(args.annotation)
    if annotation.is_dir():
        annotation = annotation / ASSEMBLED
    names = [n for n in args.rewards.split(",") if n]
    if not names:
        raise MiroError("--rewards is empty; list the rewards to bin, e.g. --rewards hpsv2,pickscore")
    edges = fit_bins(annotation, names, BinningOptions(bins=args.bins))
    print(f"{bins_beside(annotation)}: {', '.join(f'{n} ({edges.get(n).bins} bins)' for n in edges.names)}")


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", default="shapes", choices=["shapes", "folder", "webdataset"])
    p.add_argument("--path", default="", help="image folder or webdataset shards (not for shapes)")
    p.add_argument("--samples", type=number(int, 1), default=10000, help="shapes world samples")
    p.add_argument("--resolution", type=number(int, 8), default=32, help="shapes world resolution (precompute: the encoded size)")
    p.add_argument("--seed", type=number(int, 0), default=0)
    p.add_argument("--shard", default="0/1", metavar="I/N", help="only shard I of N (SLURM arrays)")
    p.add_argument("--weights", default="", help=f"weights file (TOML; default ${weights_file.ENV})")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--workers", type=number(int, 0), default=None,
                   help="image decoding processes (default: one per core beside this one, at most 8; 0: decode here)")
    p.add_argument("--max-failed", type=number(float, 0.0, 1.0), default=0.01, metavar="FRACTION",
                   help="fail once the shard is written if more than this fraction of its samples could not be used (default 0.01)")


def add_commands(sub: Any) -> None:
    a = sub.add_parser("annotate", help="score a dataset with reward scorers into an annotation folder (resumable)")
    _source_args(a)
    a.add_argument("--scorer", action="append", default=[], help="scorer name (default: the weights file's scorers, else every shapes reward)")
    a.add_argument("--scorer-option", action="append", default=[], metavar="NAME.KEY=VALUE", help="e.g. hpsv2.checkpoint=/w/HPS_v2.1_compressed.pt")
    a.add_argument("--allow-download", action="store_true", help="let scorers fetch missing weights (login nodes only)")
    a.add_argument("--batch-size", type=number(int, 1), default=64)
    a.add_argument("--merge", action="store_true", help="assemble the finished shards (and --include files) now")
    a.add_argument("--include", action="append", default=[], metavar="PARQUET", help="with --merge: an annotation made elsewhere, joined by sample key")
    a.add_argument("--out", required=True, help="annotation folder (rerun the same command to resume)")
    a.set_defaults(run=annotate_command)
    p = sub.add_parser("precompute", help="encode VAE latents and T5 caption embeddings once (sharded, resumable)")
    _source_args(p)
    p.add_argument("--vae", default="", help="AutoencoderKL folder (default: the weights file's vae)")
    p.add_argument("--t5", default="", help="T5 folder (default: the weights file's t5)")
    p.add_argument("--no-latents", action="store_true")
    p.add_argument("--no-text", action="store_true")
    p.add_argument("--max-tokens", type=number(int, 1), default=77, help="caption tokens (must equal the run's text.max_tokens)")
    p.add_argument("--batch-size", type=number(int, 1), default=16)
    p.add_argument("--out", required=True, help="feature folder; set data.features to it")
    p.set_defaults(run=precompute_command, allow_download=False)
    b = sub.add_parser("bins", help="fit reward bins on an assembled annotation (stored as <annotation>.bins.json)")
    b.add_argument("annotation", help="annotation folder or parquet file")
    b.add_argument("--rewards", required=True, help="comma-separated rewards, e.g. hpsv2,pickscore")
    b.add_argument("--bins", type=number(int, 2), default=64, help="bins per reward (the run's rewards.bins)")
    b.set_defaults(run=bins_command)
