#!/usr/bin/env bash
# vs_ort.sh — any ONNX model: vtopt (LLVM JIT and a compiled fast.so) against ONNX Runtime, in the
# same run, with the agreement of their outputs. The command a user runs on their own model.
#
# usage: bench/vs_ort.sh MODEL.onnx [--input NAME=FILE.npy ...] [--dim SYM=N ...] [--threads N]
#                        [--runs N] [--rounds K] [--build DIR] [--pass LIST] [--cpu NAME]
#   --input   feed input NAME from FILE (repeatable). Without any --input, MODEL.in.<NAME>.npy next
#             to the model are used (vtopt's zoo layout) when they exist, else random inputs
#             (float ~ N(0,1), integers 0; seed 0) are written once and fed to every engine.
#   --dim     pin a symbolic input dim (default: every unpinned symbolic dim of a random input is 1)
#   --threads threads of every engine (default 2; ORT: intra-op N, inter-op 1)
#   --runs    timed runs per engine per round (default 10; each engine reports its median)
#   --rounds  rounds; the engines alternate inside each round, order rotated (default 3)
#   --pass    vtopt pass pipeline (default: none besides canonicalisation; dense)
#   --cpu     the LLVM CPU vtopt builds for (default: the host; x86-64-v3 gives the AVX2 build)
# Prints the CPU model and ISA (the machine's, and the target vtopt built for), the compile time to fast.so, per-engine median latency (the median
# over the rounds of each round's median), ORT / vtopt ratios (> 1: vtopt is faster), and for each
# output the agreement of JIT and fast.so with ONNX Runtime (cosine, rel L2, max abs).
# Needs: build/vtopt, node + bench/setup.sh (ONNX Runtime), /usr/bin/python3 with numpy + onnx
# only for random inputs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
model=""; build="$root/build"; threads=2; runs=10; rounds=3; passes=""; cpu=""
inputs=(); dims=()
while [ $# -gt 0 ]; do
  case "$1" in
    --input) inputs+=("$2"); shift 2 ;;
    --dim) dims+=("$2"); shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --pass) passes="$2"; shift 2 ;;
    --cpu) cpu="$2"; shift 2 ;;
    -h|--help) usage ;;
    -*) echo "vs_ort.sh: unknown option $1" >&2; exit 2 ;;
    *) [ -z "$model" ] || { echo "vs_ort.sh: two models ($model, $1)" >&2; exit 2; }; model="$1"; shift ;;
  esac
done
[ -f "$model" ] || { echo "vs_ort.sh: $model: no such file" >&2; exit 2; }
model="$(cd "$(dirname "$model")" && pwd)/$(basename "$model")"
vtopt="$build/vtopt"
[ -x "$vtopt" ] || { echo "vs_ort.sh: $vtopt not built (make build)" >&2; exit 2; }
"$root/bench/setup.sh" >&2
name="$(basename "$model" .onnx)"
work="$build/bench_vs_ort/$name"
rm -rf "$work"; mkdir -p "$work"

# ---- the machine
cpu_model="$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
flags="$(grep -m1 '^flags' /proc/cpuinfo)"
isa="SSE4.2"
case "$flags" in *" avx2 "*) isa="AVX2 + FMA" ;; esac
case "$flags" in *" avx512f "*) isa="AVX-512 ($(echo "$flags" | tr ' ' '\n' | grep '^avx512' | tr '\n' ' ' | sed 's/ $//'))" ;; esac

# ---- inputs: given, zoo layout, or random (written once, fed to all)
if [ ${#inputs[@]} -eq 0 ]; then
  zoo_in=( "${model%.onnx}".in.*.npy )
  if [ -e "${zoo_in[0]}" ]; then
    for f in "${zoo_in[@]}"; do n="${f#"${model%.onnx}".in.}"; inputs+=("${n%.npy}=$f"); done
  else
    dimargs="${dims[*]:-}"
    /usr/bin/python3 - "$model" "$work" $dimargs <<'EOF' >"$work/inputs.txt"
import sys, onnx, numpy as np
m = onnx.load(sys.argv[1], load_external_data=False)
pins = dict(a.split('=') for a in sys.argv[3:])
init = {i.name for i in m.graph.initializer}
rng = np.random.default_rng(0)
types = {1: np.float32, 6: np.int32, 7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64}
for i in m.graph.input:
    if i.name in init:
        continue
    t = i.type.tensor_type
    shape = [d.dim_value if d.HasField('dim_value') else int(pins.get(d.dim_param, 1)) for d in t.shape.dim]
    dt = types.get(t.elem_type)
    if dt is None:
        sys.exit(f'vs_ort.sh: input {i.name}: element type {t.elem_type} needs --input')
    a = rng.standard_normal(shape).astype(dt) if np.issubdtype(dt, np.floating) else np.zeros(shape, dt)
    path = f'{sys.argv[2]}/in.{i.name}.npy'
    np.save(path, a)
    print(f'{i.name}={path}')
EOF
    while read -r l; do inputs+=("$l"); done <"$work/inputs.txt"
  fi
fi
vin=(); oin=(); sin=()   # vtopt on the ONNX model, ORT, vtopt run fast.so (its dims are fixed)
for i in "${inputs[@]}"; do vin+=(--input "$i"); oin+=(--input "$i"); sin+=(--input "$i"); done
for d in "${dims[@]:-}"; do [ -n "$d" ] && vin+=(--dim "$d") && oin+=(--dim "$d"); done
popt=(); [ -n "$passes" ] && popt=("--pass=$passes")
copt=(); [ -n "$cpu" ] && copt=(--cpu "$cpu")
popt+=("${copt[@]}")

# ---- compile to fast.so (dims pinned from the inputs)
t0=$(date +%s.%N)
"$vtopt" "$model" "${vin[@]}" "${popt[@]}" -q -o "$work/$name.so" --tag vs_ort
t1=$(date +%s.%N)
compile_s=$(echo "$t1 - $t0" | bc -l)

median() { sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
run_jit() { "$vtopt" "$model" "${vin[@]}" "${popt[@]}" --run --jit --threads "$threads" --runs "$runs" \
              --output-dir "$work/jit" | sed -n 's/.*median \([0-9.]*\) ms.*/\1/p'; }
run_so() { "$vtopt" run "$work/$name.so" --tag vs_ort "${sin[@]}" --threads "$threads" --runs "$runs" \
             --output-dir "$work/so" | sed -n 's/.*median \([0-9.]*\) ms.*/\1/p'; }
run_ort() { (cd "$root/bench" && node ort_run.mjs "$model" "${oin[@]}" --threads "$threads" --warmup 2 --runs "$runs" \
               --output-dir "$work/ort" --quiet) | sed -n 's/.*latency median \([0-9.]*\) ms.*/\1/p'; }
engines=(jit so ort)
: >"$work/jit.txt"; : >"$work/so.txt"; : >"$work/ort.txt"
for ((r = 0; r < rounds; r++)); do
  for ((k = 0; k < 3; k++)); do
    e=${engines[$(( (k + r) % 3 ))]}
    t=$(run_$e)
    [ -n "$t" ] || { echo "vs_ort.sh: the $e run printed no latency" >&2; exit 1; }
    echo "$t" >>"$work/$e.txt"
  done
done
jit=$(median <"$work/jit.txt"); so=$(median <"$work/so.txt"); ort=$(median <"$work/ort.txt")

echo "model: $model"
echo "CPU: $cpu_model ($(nproc) CPUs); ISA: $isa"
echo "vtopt built for:"; "$vtopt" target "${copt[@]}" | sed 's/^/  /'
echo "threads $threads each; $rounds rounds x $runs runs per engine (engines alternate); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "vtopt compile to fast.so: $(printf '%.2f' "$compile_s") s; passes: ${passes:-none (canonicalisation only)}"
echo
echo "| engine | median (ms) | ORT / this |"
echo "|---|---:|---:|"
printf '| vtopt JIT | %.3f | %.2f |\n' "$jit" "$(echo "$ort / $jit" | bc -l)"
printf '| vtopt fast.so | %.3f | %.2f |\n' "$so" "$(echo "$ort / $so" | bc -l)"
printf '| ONNX Runtime | %.3f | 1.00 |\n' "$ort"
echo
echo "agreement with ONNX Runtime's outputs:"
for f in "$work"/ort/*.npy; do
  o="$(basename "$f")"
  for e in jit so; do
    printf '  %-24s %-8s %s\n' "${o%.npy}" "$e" "$("$vtopt" compare-outputs "$f" "$work/$e/$o" 2>&1 | tail -1)"
  done
done
