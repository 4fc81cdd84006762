#!/usr/bin/env bash
# ort_portable.sh — what a user who stays on ONNX Runtime gains from vtopt's token merging: ORT
# running the dense export vs ORT running `vtopt MODEL --pass=PASSES -o portable.onnx --portable`
# (standard ONNX ops only), same input, same thread count, in the same run. Rounds alternate the
# two (order flipped every round) so load from other jobs hits both alike; each round is one
# ort_run.mjs process (warm-up, then RUNS timed runs, median). Prints the CPU, per-model median
# of the round medians, the speedup (dense / portable), and the fidelity of the portable model's
# output against the dense one (cosine, top-1 agreement), all measured here.
# usage: bench/ort_portable.sh [BUILD=build] [MODEL=vit_s16_op17] [PASSES=tome:r=13] [THREADS=2]
#        [ROUNDS=6] [RUNS=10]   (the model comes from the zoo: BUILD/zoo, generated when absent)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
model="${2:-vit_s16_op17}"; passes="${3:-tome:r=13}"; threads="${4:-2}"; rounds="${5:-6}"; runs="${6:-10}"
zoo="${ZOO:-$build/zoo}"
work="$build/bench_ort_portable"
mkdir -p "$work" "$zoo"
"$root/bench/setup.sh"
[ -f "$zoo/$model.onnx" ] || /usr/bin/python3 "$root/testsuite/models/gen_zoo.py" --only "$model" --out "$zoo" >&2
input="$zoo/$model.in.pixel_values.npy"
"$build/vtopt" "$zoo/$model.onnx" --pass="$passes" -q -o "$work/portable.onnx" --portable
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
isa=$(grep -m1 '^flags' /proc/cpuinfo | grep -o -w 'avx512f\|avx2\|fma' | sort -u | tr '\n' ' ')
echo "cpu: $cpu ($(nproc) cores; isa: $isa)   threads: $threads   rounds: $rounds x $runs runs"
one() {   # $1 = dense|portable -> median ms of one process
  local f="$zoo/$model.onnx"; [ "$1" = portable ] && f="$work/portable.onnx"
  node "$root/bench/ort_run.mjs" "$f" --input "pixel_values=$input" --threads "$threads" --warmup 3 \
    --runs "$runs" --output-dir "$work/out_$1" --json 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["median_ms"])'
}
: >"$work/dense.txt"; : >"$work/portable.txt"
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then one dense >>"$work/dense.txt"; one portable >>"$work/portable.txt"
  else one portable >>"$work/portable.txt"; one dense >>"$work/dense.txt"; fi
done
/usr/bin/python3 - "$work" "$model" "$passes" <<'PY'
import sys, numpy as np
work, model, passes = sys.argv[1:]
med = lambda f: float(np.median([float(x) for x in open(f"{work}/{f}.txt")]))
d, p = med("dense"), med("portable")
a, b = np.load(f"{work}/out_dense/logits.npy").astype(np.float64), np.load(f"{work}/out_portable/logits.npy").astype(np.float64)
cos = float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))
top1 = float((a.argmax(-1) == b.argmax(-1)).mean())
print(f"ORT dense {model}: {d:.2f} ms   ORT portable {passes}: {p:.2f} ms   speedup {d / p:.2f}x")
print(f"portable vs dense output: cosine {cos:.6f}, top-1 agreement {top1:.3f} ({a.shape[0]} rows; random weights)")
PY
