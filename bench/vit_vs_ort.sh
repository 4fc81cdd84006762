#!/usr/bin/env bash
# vit_vs_ort.sh — vtopt's fast.so against ONNX Runtime on ViT-S/16 and ViT-B/16 (full zoo, batch 1,
# dense, no token rewrite), in the same run: both stay loaded in two server processes
# (bench/vt_so_serve.c dlopens the .so through include/vtopt/model.h only; bench/ort_serve.mjs)
# and single runs alternate between them (order flipped every round), so load from other jobs
# on the machine hits both alike. GAP seconds (default 0.05) of idle time precede every run: ONNX
# Runtime's pool threads spin-wait after a run (its default), and without the gap they would
# still be spinning on the 2 cores during the next engine's run. Same thread count for both, warm-up, median of RUNS runs each.
# Prints the compile time of each model to fast.so, per-model latencies (median and best), how
# many back-to-back pairs of runs vtopt won, and the ratio
# ORT time / vtopt time (> 1: vtopt is faster).
#
# usage: bench/vit_vs_ort.sh [BUILD_DIR=build] [ZOO_DIR=BUILD_DIR/zoo] [THREADS=2] [RUNS=25] [WARMUP=3]
# (env MODELS="vit_s16_op17 vit_b16_op17" picks the models, GAP=0.05 the idle seconds before each
# run, CPU=x86-64-v3 compiles vtopt for that CPU instead of the host (e.g. the AVX2 build on an
# AVX-512 machine); bench/setup.sh installs ORT)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
zoo="${2:-$build/zoo}"
mkdir -p "$zoo"; zoo="$(cd "$zoo" && pwd)"
threads="${3:-2}"
runs="${4:-25}"
warmup="${5:-3}"
models="${MODELS:-vit_s16_op17 vit_b16_op17}"
gap="${GAP:-0.05}"
cpu="${CPU:-host}"
work="$build/bench_vit"
mkdir -p "$work"
"$root/bench/setup.sh"
for m in $models; do
  [ -f "$zoo/$m.onnx" ] || /usr/bin/python3 "$root/testsuite/models/gen_zoo.py" --only "$m" --out "$zoo" >&2
done
cc -std=c11 -O2 -Wall -Wextra -I"$root/include" "$root/bench/vt_so_serve.c" -o "$work/vt_so_serve" -ldl -lm

median() { sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

declare -A compile_s vt_ms ort_ms vt_best ort_best wins
for m in $models; do
  tag="${m//[^A-Za-z0-9_]/_}"
  t0=$(date +%s.%N)
  "$build/vtopt" "$zoo/$m.onnx" --dim batch=1 -q -o "$work/$m.so" --tag "$tag" --cpu "$cpu"
  t1=$(date +%s.%N)
  compile_s[$m]=$(echo "$t1 - $t0" | bc -l)
  printf '%s: compiled to %s in %.2f s\n' "$m" "$work/$m.so" "${compile_s[$m]}" >&2
  in=$(ls "$zoo/$m".in.*.npy | head -1)
  ref=$(ls "$zoo/$m".ref.*.npy | head -1)
  rm -f "$work/vt.in" "$work/vt.out" "$work/ort.in" "$work/ort.out"
  mkfifo "$work/vt.in" "$work/vt.out" "$work/ort.in" "$work/ort.out"
  "$work/vt_so_serve" "$work/$m.so" "$tag" "$in" "$ref" "$threads" "$warmup" <"$work/vt.in" >"$work/vt.out" &
  vpid=$!
  (cd "$root/bench" && exec node ort_serve.mjs "$zoo/$m.onnx" "$threads" "$warmup") <"$work/ort.in" >"$work/ort.out" &
  opid=$!
  exec 3>"$work/vt.in" 4<"$work/vt.out" 5>"$work/ort.in" 6<"$work/ort.out"
  read -r r <&4; [ "$r" = ready ] || { echo "vt_so_serve failed" >&2; exit 1; }
  read -r r <&6; [ "$r" = ready ] || { echo "ort_serve failed" >&2; exit 1; }
  : >"$work/$m.vt.txt"; : >"$work/$m.ort.txt"
  for ((i = 0; i < runs; i++)); do
    if ((i % 2)); then
      sleep "$gap"; echo run >&5; read -r t <&6; echo "$t" >>"$work/$m.ort.txt"
      sleep "$gap"; echo run >&3; read -r t <&4; echo "$t" >>"$work/$m.vt.txt"
    else
      sleep "$gap"; echo run >&3; read -r t <&4; echo "$t" >>"$work/$m.vt.txt"
      sleep "$gap"; echo run >&5; read -r t <&6; echo "$t" >>"$work/$m.ort.txt"
    fi
  done
  echo quit >&3; echo quit >&5
  exec 3>&- 4<&- 5>&- 6<&-
  wait "$vpid" "$opid" || true
  rm -f "$work/vt.in" "$work/vt.out" "$work/ort.in" "$work/ort.out"
  vt_ms[$m]=$(median <"$work/$m.vt.txt")
  ort_ms[$m]=$(median <"$work/$m.ort.txt")
  vt_best[$m]=$(sort -g "$work/$m.vt.txt" | head -1)
  ort_best[$m]=$(sort -g "$work/$m.ort.txt" | head -1)
  wins[$m]=$(paste "$work/$m.vt.txt" "$work/$m.ort.txt" | awk '$1 < $2 {w++} END {printf "%d of %d", w, NR}')
done
echo
echo "vtopt fast.so vs ONNX Runtime: batch 1, $threads threads each, warm-up $warmup, median of $runs interleaved runs, ${gap} s idle before each"
echo "(load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs)"
"$build/vtopt" target --cpu "$cpu" | sed 's/^/  /'   # the machine, and the CPU / ISA vtopt built for
echo
echo "| model | vtopt fast.so (ms) | ONNX Runtime (ms) | ORT / vtopt | best: vtopt / ORT (ms) | ORT / vtopt, best | vtopt faster in (pairs) | compile to .so (s) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for m in $models; do
  printf '| %s | %.1f | %.1f | %.2f | %.1f / %.1f | %.2f | %s | %.1f |\n' "$m" "${vt_ms[$m]}" "${ort_ms[$m]}" \
    "$(echo "${ort_ms[$m]} / ${vt_ms[$m]}" | bc -l)" "${vt_best[$m]}" "${ort_best[$m]}" \
    "$(echo "${ort_best[$m]} / ${vt_best[$m]}" | bc -l)" "${wins[$m]}" "${compile_s[$m]}"
done
echo
echo "(median of each engine's runs; best = fastest run; pairs: run i of vtopt against run i of ONNX"
echo "Runtime, taken back to back, so a slow spell of the VM hits both)"
