#!/usr/bin/env bash
# eventful_bench.sh — Eventful Transformers on vitstream full (ViTDet-style ViT-B at 672x672, 1764
# tokens, global attention in blocks 2/5/8/11) over real video frames: per-frame latency of dense
# vtopt and of eventful at each r, speedup over dense, fidelity to dense (mean per-frame cosine,
# first/last 20 frames), the state memory per stream (bytes the session's stateful ops hold,
# vt_interp_state_bytes) and the share of tokens the gates updated; ONNX Runtime's dense time per
# frame in the same run.
#
# One `vtopt compare --stream` run does the vtopt part: every strategy runs the clip frame by frame
# in its own session; latency = median over frames 1..F-1 (frame 0 is the flush). With the JIT
# (default) each strategy is compiled where the model compiles and otherwise runs in the reference
# interpreter; the table's `engine` column says which (`interp*` = the JIT refused it). When a
# strategy fell back, the dense model is also run in the interpreter and the speedup over it is
# printed too, so engine is compared with engine.
#
# usage: bench/eventful_bench.sh [BUILD_DIR=build] [FRAMES=100] [THREADS=2]
# env:   RS="128 256 384 512"   the budgets r (tokens updated per gate and frame)
#        MODEL=...              default: testsuite/models/out/vitstream_b16.onnx (else the lead's)
#        CLIP=...               default: data/clips/cockatoo_672_t120.npy, made on demand by
#                               scripts/make_clips.py --only cockatoo --size 672 --frames 120 --stride 2;
#                               the fixed-camera clip: data/clips/vtest_672_t120.npy, made on demand by
#                               scripts/make_clips.py --set all --only vtest --size 672 --frames 120
#        EXTRA=...              more strategies after the r list, compare syntax (e.g.
#                               "eventful:r=384,refresh=25,eventful:r=384,attn=delta_exp")
#        JIT=0                  interpreter only
#        ORT_RUNS=10            ONNX Runtime timed runs (median) on frame 0, after 2 warm-ups
# Keep FRAMES small on a shared machine (e.g. 4); the issue's numbers use >= 100.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
frames="${2:-100}"
threads="${3:-2}"
rs="${RS:-128 256 384 512}"
model="${MODEL:-$root/testsuite/models/out/vitstream_b16.onnx}"
[ -f "$model" ] || model=/work/main/testsuite/models/out/vitstream_b16.onnx
[ -f "$model" ] || { echo "eventful_bench: $model missing (testsuite/models/gen_zoo.py --only vitstream_b16)" >&2; exit 2; }
clip="${CLIP:-$root/data/clips/cockatoo_672_t120.npy}"
if [ ! -f "$clip" ]; then
  echo "eventful_bench: making $clip" >&2
  case "$(basename "$clip")" in
    vtest_672_t120.npy) /usr/bin/python3 "$root/scripts/make_clips.py" --out "$(dirname "$clip")" --set all \
                          --only vtest --size 672 --frames 120 >&2 ;;
    *) /usr/bin/python3 "$root/scripts/make_clips.py" --out "$(dirname "$clip")" --only cockatoo --size 672 \
         --frames 120 --stride 2 >&2 ;;
  esac
fi
work="$build/bench_eventful"
mkdir -p "$work"
vt="$build/vtopt"

passes=none
for r in $rs; do passes="$passes,eventful:r=$r"; done
[ -n "${EXTRA:-}" ] && passes="$passes,$EXTRA"
jitflag=--jit
[ "${JIT:-1}" = 0 ] && jitflag=
echo "== vtopt compare --stream ($frames frames, $threads threads, ${jitflag:-interpreter})" >&2
"$vt" compare "$model" --passes "$passes" --stream "$clip" --frames "$frames" --threads "$threads" $jitflag \
  --out "$work/compare" | tee "$work/compare.txt"
csv="$work/compare.csv"

# dense in the interpreter when some strategy ran there although the JIT was asked for
dense_interp_ms=
if [ -n "$jitflag" ] && grep -q ',interp\*,' "$csv"; then
  echo "== dense in the interpreter (some strategies did not compile)" >&2
  "$vt" compare "$model" --passes none --stream "$clip" --frames "$frames" --threads "$threads" \
    --out "$work/dense_interp" >/dev/null
  dense_interp_ms=$(awk -F, 'NR == 2 {print $4}' "$work/dense_interp.csv")
fi

echo "== ONNX Runtime (dense, frame 0)" >&2
"$root/bench/setup.sh" >&2
/usr/bin/python3 - "$clip" "$work/frame0.npy" <<'EOF'
import sys, numpy as np
x = np.load(sys.argv[1], mmap_mode='r')
np.save(sys.argv[2], np.ascontiguousarray(x[:1]))
EOF
ort_json=$(cd "$root/bench" && node ort_run.mjs "$model" --input "frames=$work/frame0.npy" --threads "$threads" \
  --warmup 2 --runs "${ORT_RUNS:-10}" --json --quiet | tail -1)
ort_ms=$(echo "$ort_json" | /usr/bin/python3 -c 'import sys, json; d = json.loads(sys.stdin.read()); print(d.get("median_ms", d.get("median")))')

echo
echo "vitstream_b16, $(basename "$clip"), $frames frames, $threads threads; ONNX Runtime dense: $ort_ms ms/frame"
/usr/bin/python3 - "$csv" "$ort_ms" "${dense_interp_ms:-}" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
ort = float(sys.argv[2])
dint = float(sys.argv[3]) if sys.argv[3] else None
dense = rows[0]
print(f"{'strategy':<26} {'engine':>8} {'ms/frame':>10} {'speedup':>8} {'vs interp':>9} {'ORT/this':>8} "
      f"{'cosine':>8} {'first20':>8} {'last20':>8} {'updated':>8} {'state bytes':>14}")
for r in rows:
    if not r['median_ms']:
        print(f"{r['strategy']:<26} failed"); continue
    ms = float(r['median_ms'])
    sp = float(dense['median_ms']) / ms
    vsi = f"{dint / ms:.2f}x" if dint and r['engine'] == 'interp*' else '-'
    up = f"{100 * float(r['updated_share']):.1f}%" if float(r['updated_share']) >= 0 else '-'
    print(f"{r['strategy']:<26} {r['engine']:>8} {ms:>10.1f} {sp:>7.2f}x {vsi:>9} {ort / ms:>8.2f} "
          f"{float(r['cosine']):>8.5f} {float(r['cosine_first20']):>8.5f} {float(r['cosine_last20']):>8.5f} "
          f"{up:>8} {int(r['state_bytes']):>14}")
if dint:
    print(f"dense in the interpreter: {dint:.1f} ms/frame ('vs interp': speedup of interp* strategies over it)")
print("speedup: over the first row (dense vtopt, its engine); ORT/this > 1: faster than ONNX Runtime dense")
EOF
