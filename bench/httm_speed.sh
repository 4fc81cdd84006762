#!/bin/sh
# httm_speed.sh — end-to-end speed of the httm pass against dense vtopt on vggt_full with real
# frames, and where the merged op's time goes. For each T: feeds the first T frames of CLIP
# (a [T',3,224,224] .npy from scripts/make_clips.py, T' >= T) as [1,T,3,224,224], runs the model
# densely and with PIPELINE (default: httm) with the same executor (MODE=jit: `--jit`, the dense
# attention compiled and the HTTM op an interpreter kernel called from the JIT; MODE=interp: the
# reference interpreter for both), and prints one markdown row per T:
#   dense / httm median ms, speedup, cosine and rel. L2 of the output tokens to dense,
#   the HTTM op's share of the httm run (wall), and inside the op the share of each phase
#   (CPU time summed over threads: matching, merging, attention, unmerging; from the kernel's
#   VTOPT_HTTM_PROFILE lines) and matching+merging+unmerging together.
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
echo "model $model, clip $clip, pipeline $pipe, $mode, $th threads, median of $runs run(s)"
echo
echo "| T | dense ms | httm ms | speedup | cosine | rel. L2 | op share of run | match | merge | attend | unmerge | match+merge+unmerge |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for T in $Ts; do
  /usr/bin/python3 -c "
import numpy as np, sys
x = np.load(sys.argv[1])[:int(sys.argv[2])]
assert x.shape[0] == int(sys.argv[2]), 'clip has only %d frames' % x.shape[0]
np.save(sys.argv[3], np.ascontiguousarray(x[None]).astype(np.float32))" "$clip" "$T" "$work/in$T.npy"
  if [ "${REUSE_DENSE:-0}" != 1 ] || [ ! -f "$work/dense$T/tokens.npy" ]; then
    nice -n "$nl" "$vt" "$model" --run $jit --input "images=$work/in$T.npy" --pass=none --threads "$th" --runs "$runs" \
      --output-dir "$work/dense$T" >"$work/dense$T.log" 2>&1
  fi
  VTOPT_HTTM_PROFILE=1 nice -n "$nl" "$vt" "$model" --run $jit --input "images=$work/in$T.npy" --pass="$pipe" \
    --threads "$th" --runs "$runs" --output-dir "$work/httm$T" >"$work/httm$T.log" 2>&1
  d=$(ms_of "$work/dense$T.log"); h=$(ms_of "$work/httm$T.log")
  m=$("$vt" compare-outputs "$work/dense$T/tokens.npy" "$work/httm$T/tokens.npy" || true)
  cos=$(echo "$m" | sed -n 's/.*cosine \([0-9.e+-]*\).*/\1/p')
  rl2=$(echo "$m" | sed -n 's/.*rel_l2 \([0-9.e+-]*\).*/\1/p')
  /usr/bin/python3 - "$work/httm$T.log" "$T" "$d" "$h" "$cos" "$rl2" "$runs" <<'EOF'
import re, sys
log, T, d, h, cos, rl2, runs = sys.argv[1:8]
wall = [0.0] * 4; cpu = [0.0] * 4; tot = 0.0
pat = re.compile(r'wall ms match ([\d.]+) merge ([\d.]+) attend ([\d.]+) unmerge ([\d.]+) total ([\d.]+); '
                 r'cpu ms match ([\d.]+) merge ([\d.]+) attend ([\d.]+) unmerge ([\d.]+)')
for line in open(log):
    mm = pat.search(line)
    if mm:
        v = [float(x) for x in mm.groups()]
        tot += v[4]
        for i in range(4):
            cpu[i] += v[5 + i]
c = sum(cpu) or 1.0
share = lambda x: '%.1f%%' % (100.0 * x / c)
op = tot / int(runs) / float(h) if h else 0.0   # op wall time per run over the run's median
print('| %s | %s | %s | %.2fx | %s | %s | %.1f%% | %s | %s | %s | %s | %s |' % (
    T, d, h, float(d) / float(h), cos, rl2, 100.0 * op, share(cpu[0]), share(cpu[1]), share(cpu[2]),
    share(cpu[3]), share(cpu[0] + cpu[1] + cpu[3])))
EOF
done
