#!/usr/bin/env bash
# The prepared GPU check, for one H100/H200 (about 6-8 minutes): the network benchmark, eager and compiled, beside
# the authors' (same GPU, same run); the data-feed benchmark; and 200 steps of the paper preset (360.4M RIN, batch
# 128, bf16) trained from a synthetic feature store through the real DataLoader path. Each part writes its JSON
# line to $OUT/<part>.json (default gpu-check/); the last line printed is one JSON summary of all four.
#
#   bash scripts/gpu_check.sh prepare   # on a machine with PyPI: the authors' package, their benchmark script and
#                                       # the wheels the GPU image lacks (webdataset, braceexpand) -> .gpu-check/
#   bash scripts/gpu_check.sh           # on the GPU machine (nothing is downloaded there; carry .gpu-check/)
#
# A part that fails or runs past its time limit is recorded as {"error": ...} and the others still run; the
# script exits non-zero if any part failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PREP=.gpu-check
OUT=${OUT:-gpu-check}

if [ "${1:-run}" = prepare ]; then
  set -e
  reference=""
  for candidate in shared/bench/official_miro_throughput.py ../shared/bench/official_miro_throughput.py; do
    [ -f "$candidate" ] && reference=$candidate && break
  done
  [ -n "$reference" ] || { echo "error: the authors' benchmark script (shared/bench/official_miro_throughput.py) is not beside the checkout" >&2; exit 2; }
  mkdir -p "$PREP/wheels" "$PREP/ref"
  cp "$reference" "$PREP/"
  python3 -m pip download -q --no-deps -d "$PREP/ref" miro-t2i==0.1.4  # the released code, never committed
  python3 - "$PREP/ref" <<'EOF'
import sys, zipfile
from pathlib import Path
ref = Path(sys.argv[1])
with zipfile.ZipFile(ref / "miro_t2i-0.1.4-py3-none-any.whl") as wheel:
    wheel.extractall(ref, [n for n in wheel.namelist() if n.startswith("miro/")])
(ref / "miro" / "__init__.py").write_text("")  # skip the pipeline import, as noxfile.py does
EOF
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$PREP/wheels" webdataset==1.0.2 braceexpand==0.1.7
  echo "prepared $PREP: carry it to the GPU machine and run: bash scripts/gpu_check.sh"
  exit 0
fi

[ -d "$PREP/ref/miro" ] || { echo "error: $PREP is missing; run 'bash scripts/gpu_check.sh prepare' on a machine with PyPI first, then carry $PREP" >&2; exit 2; }
python3 -c "import torch; assert torch.cuda.is_available()" || { echo "error: no CUDA device: this check is for a GPU machine" >&2; exit 2; }
site=$(mktemp -d)
python3 -m pip install -q --no-index --no-deps --target "$site" "$PREP"/wheels/*.whl || exit 2
export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
failed=0

part() {  # part NAME SECONDS COMMAND...: the command's last stdout line to $OUT/NAME.json, its output to $OUT/NAME.log
  local name=$1 limit=$2
  shift 2
  echo "== $name (at most ${limit} s): $*" >&2
  if timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; then
    tail -n 1 "$OUT/$name.log" > "$OUT/$name.json"
  else
    echo "{\"error\": \"$name failed or ran past ${limit} s (exit $?); see $OUT/$name.log\"}" > "$OUT/$name.json"
    failed=1
  fi
  cat "$OUT/$name.json" >&2
}

reference=(--reference "$PREP/official_miro_throughput.py" --reference-site "$PREP/ref")
part bench_eager 100 python3 -m miro.bench "${reference[@]}"
part bench_compiled 170 python3 -m miro.bench --compile "${reference[@]}"
part data 110 python3 -m miro.bench data --samples 20000 --dir "$(mktemp -d)"
part feed 140 python3 -m miro.bench feed --steps 200 --batch 128 --dir "$(mktemp -d)"

python3 - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
parts = {p: json.loads((out / f"{p}.json").read_text()) for p in ("bench_eager", "bench_compiled", "data", "feed")}
print(json.dumps({
    "device": parts["feed"].get("device") or parts["bench_eager"].get("device"),
    "network_ours_over_official": {k: parts[k].get("ratio_ours_over_official") for k in ("bench_eager", "bench_compiled")},
    "network_train_samples_per_s": {k: parts[k].get("ours", {}).get("train_samples_per_s_B128") for k in ("bench_eager", "bench_compiled")},
    "data": {k: parts["data"].get(k) for k in ("read_samples_per_s", "read_ratio", "bytes_read_per_sample", "open_s_12m",
                                               "open_mb_12m", "data_wait_fraction")},
    "feed": {k: parts["feed"].get(k) for k in ("samples_per_s", "data_wait_fraction", "peak_mem_GiB", "wall_s")},
    "errors": {name: part["error"] for name, part in parts.items() if "error" in part},
}))
EOF
exit $failed
