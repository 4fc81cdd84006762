#!/bin/sh
# stream_setup.sh — fixture of the streaming tests (codegen/CMakeLists.txt): exports the tiny
# vitstream model, makes a synthetic 12-frame clip (a pattern drifting over a fixed background, so
# only some tokens change between frames), writes the interpreter's per-frame outputs of the
# eventful model (eventful:r=16 compiled in, knob eventful.r=R at run time) and of the dense model,
# and compiles the eventful model to a fast.so (tag evt).
# usage: stream_setup.sh VTOPT SRC_DIR OUT_DIR R
set -eu
vtopt="$1"; src="$2"; out="$3"; r="$4"
mkdir -p "$out"
/usr/bin/python3 "$src/testsuite/models/gen_zoo.py" --only vitstream_tiny --out "$out" >/dev/null
/usr/bin/python3 - "$out/clip.npy" <<'PY'
import sys
import numpy as np
rng = np.random.default_rng(7)
bg = rng.standard_normal((3, 64, 64)).astype(np.float32)
yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
frames = []
for t in range(12):
    blob = np.exp(-((xx - 10 - 3 * t) ** 2 + (yy - 30) ** 2) / 40.0)
    frames.append(bg + 2.0 * blob[None] + 0.01 * rng.standard_normal((3, 64, 64)).astype(np.float32))
np.save(sys.argv[1], np.stack(frames).astype(np.float32))
PY
m="$out/vitstream_tiny.onnx"
rm -rf "$out/ref_evt" "$out/ref_dense"
"$vtopt" "$m" --pass=eventful:r=16 --run --stream "$out/clip.npy" --knob eventful.r="$r" --output-dir "$out/ref_evt" -q
"$vtopt" "$m" --run --stream "$out/clip.npy" --output-dir "$out/ref_dense" -q
"$vtopt" "$m" --pass=eventful:r=16 --dim T=1 -q --stats -o "$out/evt.so" --tag evt > "$out/evt.stats"
# the generated share (193 of 259 nodes when written) and the host kernels allowed: the stateful
# ops (TokenGate's control logic, EventfulAttention) and what codegen does not generate yet
/usr/bin/python3 "$src/testsuite/models/check_stats.py" "$out/evt.stats" --what evt.so --min-share 0.74 \
  --host TokenGate=9 --host EventfulAttention=1 --host Cast=36 --host Einsum=6 --host Gather=6 --host Pad=2 --host Range=6
echo "stream_setup: $out/evt.so, references in $out/ref_evt and $out/ref_dense"
