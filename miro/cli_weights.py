"""The weights commands of `python -m miro`, and the example data set.

    python -m miro weights check weights.toml        # every path, sha256 and config, all problems at once
    python -m miro weights tiny OUT                  # tiny random models in the real formats + OUT/weights.toml
    python -m miro weights fetch OUT                 # on a login node with internet: the real ones + OUT/weights.toml
    python -m miro example-data OUT [--samples 64 --shards 2 --format webdataset|folder]
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from miro import weights_file
from miro.errors import MiroError, number


def check_command(args: argparse.Namespace) -> None:
    weights_file.read(args.target)  # a file that does not parse is the one problem: one line
    problems = weights_file.check(args.target)
    if problems:
        print("\n".join(problems))  # one a line, like a linter's report; the error line sums them up
        raise MiroError(f"{len(problems)} problem(s) in {args.target} (listed above); fix them and run weights check again")
    weights = weights_file.read(args.target)
    print(f"{args.target}: {len(weights.entries)} files and {len(weights.scorers)} scorers, all present and readable")


def tiny_command(args: argparse.Namespace) -> None:
    from miro.tiny.weights import write_tiny_weights

    print(write_tiny_weights(Path(args.target), benchmarks=args.benchmarks and Path(args.benchmarks),
                             fid_reference=args.fid_reference and Path(args.fid_reference)))


def fetch_command(args: argparse.Namespace) -> None:
    from miro.fetch import fetch_all

    print(fetch_all(Path(args.target), only=tuple(args.only), endpoint=args.endpoint or None))


def example_data_command(args: argparse.Namespace) -> None:
    from miro.tiny.data import write_example_data

    print(write_example_data(Path(args.out), samples=args.samples, shards=args.shards, fmt=args.format, seed=args.seed))


def add_commands(sub: Any) -> None:
    w = sub.add_parser("weights", help="check a weights file, write tiny stand-ins, or fetch the real weights and benchmarks",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = w.add_subparsers(dest="action", required=True)
    c = actions.add_parser("check", help="every path, sha256 and config of a weights file, all problems at once")
    c.add_argument("target", metavar="FILE")
    c.set_defaults(run=check_command)
    t = actions.add_parser("tiny", help="tiny random models in the real formats and OUT/weights.toml naming them (seconds)")
    t.add_argument("target", metavar="OUT", help="folder to write (the same command run again keeps it)")
    t.add_argument("--benchmarks", default="", help="name the real GenEval / PartiPrompts files in this folder "
                   "(geneval/, partiprompts/, as weights fetch writes them) instead of tiny stand-ins")
    t.add_argument("--fid-reference", default="", help="a folder of images to name as the FID reference")
    t.set_defaults(run=tiny_command)
    f = actions.add_parser("fetch", help="download every model and benchmark file from its official source, verify, "
                           "and write OUT/weights.toml (a login node with internet; rerun to resume)")
    f.add_argument("target", metavar="OUT", help="folder to download into")
    f.add_argument("--only", action="append", default=[], metavar="KEY", help="only this weights-file key, e.g. t5 or scorers.hpsv2 (repeat)")
    f.add_argument("--endpoint", default="", help="a Hugging Face Hub mirror (default: $HF_ENDPOINT, else huggingface.co)")
    f.set_defaults(run=fetch_command)
    e = sub.add_parser("example-data", help="write shapes-world scenes as webdataset shards or an image folder")
    e.add_argument("out", help="folder to write (the same command run again keeps it)")
    e.add_argument("--samples", type=number(int, 1), default=64)
    e.add_argument("--shards", type=number(int, 1), default=2, help="webdataset shards")
    e.add_argument("--format", default="webdataset", choices=["webdataset", "folder"])
    e.add_argument("--seed", type=number(int, 0), default=0)
    e.set_defaults(run=example_data_command)
