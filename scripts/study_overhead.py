"""Wall time and start-up share of the tiny real-format study, this checkout against another commit, in one run.

    python scripts/study_overhead.py --against <commit> [--code HEAD] [--out study-overhead] [--arms 3 --steps 40 --images 128]
    python scripts/study_overhead.py --against <commit> --study default    # a built-in study instead (nox -s sweep's)

The study is tests/real_study.py's (the paper's pipeline on tiny random models in the real file formats) at 3 arms,
40 steps and 128 images: 45 units (2 annotation and 2 precompute shards, an assembly, 3 trainings, a tuning, 12
evaluations and their 24 generation shards). The weights and data are written once; the repository is cloned at
--against and at --code into <out>/against/ and <out>/code/; then the study runs with each, one after the other,
each in a fresh root, on the local executor with 2 units side by side. One JSON line per code, then their ratio:
wall seconds, units done, and from each unit's events the seconds from its submission to its start (process
start-up and imports: the overhead) and their share of unit time (submission to done). The machine should be
otherwise idle; the two runs share whatever else it does, so compare their ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent


def event_times(root: Path) -> list[dict[str, float]]:
    """Per unit: when it was first submitted, first ran and finished (from its events.jsonl, to the second)."""
    units = []
    for events in sorted((root / "store" / "units").glob("*/events.jsonl")):
        seen: dict[str, float] = {}
        for line in events.read_text().splitlines():
            event = json.loads(line)
            if event["event"] in ("submitted", "running", "done") and event["event"] not in seen:
                seen[event["event"]] = datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
        if len(seen) == 3:
            units.append(seen)
    return units


def run_study(code: Path, study: Path | str, root: Path) -> dict[str, float | str]:
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    tic = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "harness.sweep", str(study), "--root", str(root)], cwd=code, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - tic
    if done.returncode:
        raise SystemExit(f"the study failed with {code}:\n{done.stderr[-3000:]}")
    units = event_times(root)
    overhead = [u["running"] - u["submitted"] for u in units]
    total = sum(u["done"] - u["submitted"] for u in units)
    return {"code": str(code), "wall_s": round(wall, 1), "units": len(units), "median_overhead_s": statistics.median(overhead),
            "overhead_s": sum(overhead), "overhead_share": round(sum(overhead) / total, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", required=True, help="the commit to compare with (e.g. the one before warm workers)")
    parser.add_argument("--code", default="HEAD", help="the commit measured against it (default: this checkout's HEAD)")
    parser.add_argument("--out", default="study-overhead", help="a new folder for the weights, data, clone and runs")
    parser.add_argument("--study", help="a built-in study to run instead of the tiny real-format one (e.g. default)")
    parser.add_argument("--arms", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--images", type=int, default=128)
    args = parser.parse_args()
    out = Path(args.out).absolute()
    out.mkdir(parents=True)
    sys.path[:0] = [str(CHECKOUT / "tests"), str(CHECKOUT)]
    from real_study import write_study

    study = args.study or write_study(out / "inputs", images=args.images, arms=args.arms, steps=args.steps)
    for name, commit in (("against", args.against), ("code", args.code)):
        revision = subprocess.run(["git", "-C", str(CHECKOUT), "rev-parse", commit], check=True, capture_output=True, text=True)
        subprocess.run(["git", "clone", "--quiet", str(CHECKOUT), str(out / name)], check=True)
        subprocess.run(["git", "-C", str(out / name), "checkout", "--quiet", revision.stdout.strip()], check=True)
    before = run_study(out / "against", study, out / "runs-against")
    print(json.dumps(before), flush=True)
    after = run_study(out / "code", study, out / "runs-code")
    print(json.dumps(after), flush=True)
    print(json.dumps({"wall_ratio": round(float(before["wall_s"]) / float(after["wall_s"]), 2),
                      "overhead_ratio": round(float(before["overhead_s"]) / max(float(after["overhead_s"]), 1.0), 2)}))


if __name__ == "__main__":
    main()
