#!/usr/bin/env bash
# tome_speed.sh — ToMe's end-to-end speed-up over dense vtopt on ViT-S/16 (batch 1), compiled.
# Every strategy is compiled to its own fast.so (`vtopt --pass=... -o`), all stay loaded in
# server processes (bench/vt_so_serve.c, public ABI only) and single runs rotate between them
# (the starting strategy moves every round), so load from other jobs on the machine hits all
# alike. Same thread count for all, warm-up, median of RUNS runs each. Prints per strategy the
# median and spread, the speed-up over dense, the CPU time per run (all threads, from
# /proc/PID/stat around the timed runs; on a loaded machine the wall times scatter but the CPU
# time still says how much work each strategy does) and the output's rel. L2 to the dense
# reference (from vt_so_serve's check).
#
# usage: bench/tome_speed.sh [BUILD_DIR=build] [MODEL=BUILD_DIR/zoo/vit_s16_op17.onnx] [THREADS=2]
#                            [RUNS=25] [WARMUP=3]
# env STRATEGIES="none tome:r=8 tome:r=13" picks the strategies (none = dense; the first is the
# reference of the speed-ups). The input is MODEL's .in.*.npy next to it (the zoo's).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
model="${2:-$build/zoo/vit_s16_op17.onnx}"
threads="${3:-2}"
runs="${4:-25}"
warmup="${5:-3}"
strategies=(${STRATEGIES:-none tome:r=8 tome:r=13})
[ -f "$model" ] || { echo "tome_speed: $model not found (build the zoo: cmake --build $build)" >&2; exit 2; }
base="${model%.onnx}"
in=$(ls "$base".in.*.npy | head -1)
ref=$(ls "$base".ref.*.npy | head -1)
work="$build/bench_tome"
mkdir -p "$work"
cc -std=c11 -O2 -Wall -Wextra -I"$root/include" "$root/bench/vt_so_serve.c" -o "$work/vt_so_serve" -ldl -lm

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

n=${#strategies[@]}
pids=(); W=(); R=()
for ((s = 0; s < n; s++)); do
  spec="${strategies[$s]}"
  pass=(); [ "$spec" = none ] || pass=(--pass="$spec")
  "$build/vtopt" "$model" --dim batch=1 -q "${pass[@]}" -o "$work/s$s.so" --tag "s$s"
  rm -f "$work/s$s.in" "$work/s$s.out"
  mkfifo "$work/s$s.in" "$work/s$s.out"
  "$work/vt_so_serve" "$work/s$s.so" "s$s" "$in" "$ref" "$threads" "$warmup" <"$work/s$s.in" >"$work/s$s.out" \
    2>"$work/s$s.err" &
  pids+=($!)
  exec {fw}>"$work/s$s.in"; exec {fr}<"$work/s$s.out"
  W[$s]=$fw; R[$s]=$fr
  r=; read -r r <&"${R[$s]}" || true
  [ "$r" = ready ] || { echo "tome_speed: server for $spec failed: $(cat "$work/s$s.err")" >&2; exit 1; }
  : >"$work/s$s.txt"
done
declare -a c0 c1
for ((s = 0; s < n; s++)); do c0[$s]=$(cpu_ticks "${pids[$s]}"); done
for ((i = 0; i < runs; i++)); do
  for ((k = 0; k < n; k++)); do
    s=$(((i + k) % n))
    echo run >&"${W[$s]}"; read -r t <&"${R[$s]}"; echo "$t" >>"$work/s$s.txt"
  done
done
for ((s = 0; s < n; s++)); do c1[$s]=$(cpu_ticks "${pids[$s]}"); done
for ((s = 0; s < n; s++)); do echo quit >&"${W[$s]}"; exec {W[$s]}>&- {R[$s]}<&-; done
wait "${pids[@]}" || true
echo "ToMe on $(basename "$model"): fast.so, batch 1, $threads threads, warm-up $warmup, median of $runs rotated runs"
echo "(load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs)"
echo
echo "| strategy | median ms | min..max ms | speed-up | CPU ms/run | CPU speed-up | rel. L2 to the dense reference |"
echo "|---|---:|---:|---:|---:|---:|---:|"
d=$(median <"$work/s0.txt")
hz=$(getconf CLK_TCK)
cd0=$(echo "(${c1[0]} - ${c0[0]}) * 1000 / $hz / $runs" | bc -l)
for ((s = 0; s < n; s++)); do
  m=$(median <"$work/s$s.txt")
  lo=$(sort -g "$work/s$s.txt" | head -1); hi=$(sort -g "$work/s$s.txt" | tail -1)
  l2=$(sed -n 's/.*rel. L2 \(.*\)/\1/p' "$work/s$s.err")
  cpu=$(echo "(${c1[$s]} - ${c0[$s]}) * 1000 / $hz / $runs" | bc -l)
  printf '| %s | %.1f | %.1f..%.1f | %.2fx | %.1f | %.2fx | %s |\n' "${strategies[$s]}" "$m" "$lo" "$hi" \
    "$(echo "$d / $m" | bc -l)" "$cpu" "$(echo "$cd0 / $cpu" | bc -l)" "$l2"
  rm -f "$work/s$s.in" "$work/s$s.out"
done
