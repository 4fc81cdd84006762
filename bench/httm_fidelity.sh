#!/bin/sh
# httm_fidelity.sh — fidelity (and interpreter latency) of the httm pass against the dense model on
# real frames: runs MODEL densely and with each pipeline on the first T frames of CLIP (a
# [T,3,S,S] .npy from scripts/make_clips.py, fed as [1,T,3,S,S]) and prints one markdown row per
# pipeline: cosine / rel. L2 / max abs of the output tokens against dense, and the interpreter time.
# usage: bench/httm_fidelity.sh MODEL.onnx CLIP.npy T "httm:q_keep=1.0,kv_keep=1.0" "httm" ...
# env: VTOPT (default build/vtopt), THREADS (default 2), WORK (default /tmp/httm_fidelity)
set -eu
model=$1; clip=$2; T=$3; shift 3
vt=${VTOPT:-build/vtopt}; th=${THREADS:-2}; work=${WORK:-/tmp/httm_fidelity}
mkdir -p "$work"
/usr/bin/python3 -c "
import numpy as np, sys
x = np.load(sys.argv[1])[:int(sys.argv[2])]
assert x.shape[0] == int(sys.argv[2]), 'clip has only %d frames' % x.shape[0]
np.save(sys.argv[3], np.ascontiguousarray(x[None]).astype(np.float32))" "$clip" "$T" "$work/in.npy"
run() {  # $1 = pipeline, $2 = output dir; prints the median latency in ms
  "$vt" "$model" --run --input "images=$work/in.npy" --pass="$1" --threads "$th" --output-dir "$2" 2>&1 |
    sed -n 's/.*median \([0-9.]*\) ms.*/\1/p'
}
dense_ms=$(run none "$work/dense")
echo "| pipeline | cosine | rel. L2 | max abs | interpreter ms | speedup |"
echo "|---|---|---|---|---|---|"
echo "| none (dense) | 1 | 0 | 0 | $dense_ms | 1.00 |"
for p in "$@"; do
  ms=$(run "$p" "$work/o")
  m=$("$vt" compare-outputs "$work/dense/tokens.npy" "$work/o/tokens.npy" || true)
  cos=$(echo "$m" | sed -n 's/.*cosine \([0-9.e+-]*\).*/\1/p')
  rl2=$(echo "$m" | sed -n 's/.*rel_l2 \([0-9.e+-]*\).*/\1/p')
  mab=$(echo "$m" | sed -n 's/.*max_abs \([0-9.e+-]*\).*/\1/p')
  sp=$(/usr/bin/python3 -c "print('%.2f' % ($dense_ms / $ms))")
  echo "| $p | $cos | $rl2 | $mab | $ms | $sp |"
done
