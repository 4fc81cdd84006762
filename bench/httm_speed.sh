#!/bin/sh
# httm_speed.sh — end-to-end speed of the httm pass against dense vtopt on vggt_full with real
# frames, and where the merged op's time goes. For each T: feeds the first T frames of CLIP
# (a [T',3,224,224] .npy from scripts/make_clips.py, T' >= T) as [1,T,3,224,224], runs the model
# densely and with PIPELINE (default: httm) with the same executor (MODE=jit: `--jit`, every
# node it can compile compiled, dense attention included, while the HTTM op is the runtime kernel
# called from the JIT; MODE=interp: the reference interpreter for both), and prints one markdown
# row per T:
#   wall: the median run time vtopt reports, dense and httm, and their ratio;
#   cpu: the CPU time (user + sys, all threads) of the run: the process's CPU time minus that of
#     a 1-frame run of the same pipeline (compilation, loading, a tiny run), and their ratio.
#     On a shared machine the wall ratio is noise; the CPU ratio is the stable one;
#   cosine and rel. L2 of the output tokens to dense;
#   op: the HTTM op's CPU time over the httm run's; then inside the op the share of each phase
#     (CPU time summed over threads, from the kernel's VTOPT_HTTM_PROFILE=1 lines: matching,
#     merging, attention on merged tokens, unmerging) and matching+merging+unmerging together.
# Make a long enough clip first (not committed; T' = 64 needs cockatoo at stride 4):
#   /usr/bin/python3 scripts/make_clips.py --out /tmp/clips --frames 64
# usage: bench/httm_speed.sh MODEL.onnx CLIP.npy "16 32 64" [PIPELINE]
# env: VTOPT (default build/vtopt), THREADS (2), RUNS (1), MODE (jit|interp), WORK (/tmp/httm_speed),
#      NICE (nice level, default 10: the machine is shared), REUSE_DENSE=1 (keep WORK's dense run of
#      the same T from an earlier call: only the httm side is re-run)
set -eu
model=$1; clip=$2; Ts=$3; pipe=${4:-httm}
vt=${VTOPT:-build/vtopt}; th=${THREADS:-2}; runs=${RUNS:-1}; mode=${MODE:-jit}
work=${WORK:-/tmp/httm_speed}; nl=${NICE:-10}
jit=""; [ "$mode" = jit ] && jit="--jit"
mkdir -p "$work"
ms_of() { sed -n 's/.*median \([0-9.]*\) ms.*/\1/p' "$1" | tail -1; }
frames() {  # $1 = T: writes $work/in$1.npy
  [ -f "$work/in$1.npy" ] || /usr/bin/python3 -c "
import numpy as np, sys
x = np.load(sys.argv[1])[:int(sys.argv[2])]
assert x.shape[0] == int(sys.argv[2]), 'clip has only %d frames' % x.shape[0]
np.save(sys.argv[3], np.ascontiguousarray(x[None]).astype(np.float32))" "$clip" "$1" "$work/in$1.npy"
}
run() {  # $1 = pipeline, $2 = T, $3 = name: log in $work/$3.log, CPU seconds in $work/$3.cpu
  VTOPT_HTTM_PROFILE=1 /usr/bin/time -f "%U %S" -o "$work/$3.time" nice -n "$nl" "$vt" "$model" --run $jit \
    --input "images=$work/in$2.npy" --pass="$1" --threads "$th" --runs "$runs" --output-dir "$work/$3" >"$work/$3.log" 2>&1
  awk '{print $1 + $2}' "$work/$3.time" >"$work/$3.cpu"
}
frames 1
run none 1 base_dense
run "$pipe" 1 base_httm
echo "model $model, clip $clip, pipeline $pipe, $mode, $th threads, median of $runs run(s)"
echo "1-frame runs (compile + load + tiny run), CPU s: dense $(cat "$work/base_dense.cpu"), httm $(cat "$work/base_httm.cpu")"
echo
echo "| T | dense wall ms | httm wall ms | wall ratio | dense CPU s | httm CPU s | CPU ratio | cosine | rel. L2 | op CPU share of run | match | merge | attend | unmerge | match+merge+unmerge |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for T in $Ts; do
  frames "$T"
  if [ "${REUSE_DENSE:-0}" != 1 ] || [ ! -f "$work/dense$T/tokens.npy" ] || [ ! -f "$work/dense$T.cpu" ]; then
    run none "$T" "dense$T"
  fi
  run "$pipe" "$T" "httm$T"
  m=$("$vt" compare-outputs "$work/dense$T/tokens.npy" "$work/httm$T/tokens.npy" || true)
  /usr/bin/python3 - "$work" "$T" "$runs" "$m" <<'EOF'
import re, sys
work, T, runs, cmp = sys.argv[1:5]
runs = int(runs)
def ms(name):
    v = re.findall(r'median ([\d.]+) ms', open('%s/%s.log' % (work, name)).read())
    return float(v[-1])
def cpu(name):
    return float(open('%s/%s.cpu' % (work, name)).read())
cd = (cpu('dense' + T) - cpu('base_dense')) / runs
ch = (cpu('httm' + T) - cpu('base_httm')) / runs
ph = [0.0] * 4
pat = re.compile(r'cpu ms match ([\d.]+) merge ([\d.]+) attend ([\d.]+) unmerge ([\d.]+)')
for line in open('%s/httm%s.log' % (work, T)):
    mm = pat.search(line)
    if mm:
        for i in range(4):
            ph[i] += float(mm.group(1 + i))
op = sum(ph) / runs / 1e3
c = sum(ph) or 1.0
pc = lambda x: '%.1f%%' % (100.0 * x / c)
cos = re.search(r'cosine ([\d.e+-]+)', cmp)
rl2 = re.search(r'rel_l2 ([\d.e+-]+)', cmp)
print('| %s | %.0f | %.0f | %.2fx | %.1f | %.1f | %.2fx | %s | %s | %.1f%% | %s | %s | %s | %s | %s |' % (
    T, ms('dense' + T), ms('httm' + T), ms('dense' + T) / ms('httm' + T), cd, ch, cd / ch,
    cos.group(1) if cos else '?', rl2.group(1) if rl2 else '?', 100.0 * op / ch,
    pc(ph[0]), pc(ph[1]), pc(ph[2]), pc(ph[3]), pc(ph[0] + ph[1] + ph[3])))
EOF
done
