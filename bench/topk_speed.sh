#!/usr/bin/env bash
# topk_speed.sh — Shiva-DiT top-k routing (the topk pass) against dense vtopt on the zoo's
# dit_s2 (full size: 256 tokens, 12 blocks, D = 384), whole DDIM sampling runs with CFG (batch 2:
# cond + uncond) through compiled fast.so libraries (vtopt sample drives each through its ABI).
# Strategies, all compiled with the same flags: dense; topk with calibrated routers at R = 0.8 and
# R = 0.6 (per_step=0: one constant k per block, the mean of the paper-shaped table's column, so
# every kernel is specialised); topk random at R = 0.6 (same k, no router). Routers come from
# `vtopt calibrate` on the states of a short dense sampling run of the same model (random weights:
# the speed does not depend on what the routers learned). Rounds are interleaved; prints the
# median wall time per image, the speed-up over dense in the same run, the mean tokens per block
# and the FLOPs per image (methods.md 4(e): linear layers 12 D^2 k, attention 2 k^2 D per pruned
# block, router N (64 D + 64)), plus the CPU it ran on.
#
# usage: bench/topk_speed.sh [BUILD_DIR=build] [MODEL=BUILD_DIR/zoo-full/dit_s2.onnx] [THREADS=2]
# env STEPS=20 (sampler steps), ROUNDS=3, CLASSES="1" (one image per listed class)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
model="${2:-$build/zoo-full/dit_s2.onnx}"
threads="${3:-2}"
steps="${STEPS:-20}"
rounds="${ROUNDS:-3}"
classes="${CLASSES:-1}"
vt="$build/vtopt"
[ -f "$model" ] || { echo "topk_speed: $model not found (gen_zoo.py --only dit_s2 --out $(dirname "$model"))" >&2; exit 2; }
work="$build/topk_speed"
mkdir -p "$work"
rm -f "$work"/*.ms
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); ISA: $(grep -q -w avx512f /proc/cpuinfo && echo avx512f || (grep -q -w avx2 /proc/cpuinfo && echo avx2 || echo other)); threads $threads; load $(cut -d' ' -f1-3 /proc/loadavg)"
nb=$(echo "$classes" | tr ',' '\n' | wc -l)
# calibration states: a short dense run (interpreter)
if [ ! -f "$work/routers08.npz" ]; then
  "$vt" sample "$model" --steps 4 --classes 3 --null 1000 --threads "$threads" --save-states "$work/states" -o "$work/cal" >/dev/null
  "$vt" calibrate "$model" --pass=topk:R=0.8,steps=$steps --data "$work/states" -o "$work/routers08.npz" --threads "$threads" | tail -1
  "$vt" calibrate "$model" --pass=topk:R=0.6,steps=$steps --data "$work/states" -o "$work/routers06.npz" --threads "$threads" | tail -1
fi
names=(dense topk_R0.8 topk_R0.6 random_R0.6)
passes=("none" "topk:routers=$work/routers08.npz,cfg=1,per_step=0" "topk:routers=$work/routers06.npz,cfg=1,per_step=0"
        "topk:policy=random,R=0.6,steps=$steps,cfg=1,per_step=0")
for i in "${!names[@]}"; do
  n=${names[$i]}
  "$vt" "$model" --pass="${passes[$i]}" --dim batch=$((2 * nb)) -o "$work/$n.so" --tag "dit_$i" --stats -q > "$work/$n.stats" 2>&1 || { cat "$work/$n.stats"; exit 1; }
  "$vt" "$model" --pass="${passes[$i]}" --dim batch=$((2 * nb)) --stats --explain -q 2>/dev/null | grep -E "rule block" > "$work/$n.tokens" || true
done
for r in $(seq "$rounds"); do
  for i in "${!names[@]}"; do
    n=${names[$i]}
    "$vt" sample "$work/$n.so" --tag "dit_$i" --steps "$steps" --classes "$classes" --null 1000 --threads "$threads" -o "$work/out_$n" \
      | sed -n 's/.*: \([0-9.]*\) ms per image.*/\1/p' >> "$work/$n.ms"
  done
done
/usr/bin/python3 - "$work" "$steps" "${names[@]}" <<'PY'
import re, sys, statistics
work, steps, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
D, N, H = 384, 256, 64
def tokens(n):
    ks = []
    for line in open(f'{work}/{n}.tokens'):
        m = re.search(r'block (\d+) tokens \d+ -> ([0-9.]+)', line)
        if m: ks.append(float(m.group(2)))
    return ks or [float(N)] * 12
def gflops(ks, routed):
    f = 0.0
    for l, k in enumerate(ks):
        f += 2 * (12 * D * D * k + 2 * k * k * D)
        if routed and l > 0: f += 2 * N * (H * D + H)
    return f * 2 * steps / 1e9   # batch 2 (CFG), per image
base = bmin = None
print(f'{"strategy":<14} {"ms/image":>10} {"speed-up":>9} {"min ms":>8} {"min/min":>8} {"GFLOPs/img":>11} {"FLOPs ratio":>11} '
      f'{"tokens/block":>13}  runs (ms)')
f0 = None
for n in names:
    ms = [float(x) for x in open(f'{work}/{n}.ms').read().split()]
    med, mn = statistics.median(ms), min(ms)
    base, bmin = base or med, bmin or mn
    ks = tokens(n)
    fl = gflops(ks, n != "dense" and not n.startswith("random"))
    f0 = f0 or fl
    print(f'{n:<14} {med:10.1f} {base / med:9.2f} {mn:8.1f} {bmin / mn:8.2f} {fl:11.1f} {f0 / fl:11.2f} '
          f'{sum(ks) / len(ks):13.1f}  {" ".join(f"{x:.0f}" for x in ms)}')
PY
