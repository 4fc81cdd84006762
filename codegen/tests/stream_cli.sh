#!/bin/sh
# stream_cli.sh — the eventful stream of the fixture (stream_setup.sh) through the CLI's compiled
# sessions must equal the interpreter's, frame by frame (rel. L2 <= 1e-4): `vtopt M.onnx --run
# --jit --stream` (ORC JIT session) and `vtopt run evt.so --stream` (the fast.so through its ABI);
# an unknown --knob is an error (exit 2) naming the valid knobs; VTOPT_PROFILE=1 prints a profile.
# usage: stream_cli.sh VTOPT OUT_DIR R
set -eu
vtopt="$1"; out="$2"; r="$3"
m="$out/vitstream_tiny.onnx"
rm -rf "$out/jit_evt" "$out/so_evt"
"$vtopt" "$m" --pass=eventful:r=16 --run --jit --stats --stream "$out/clip.npy" --knob eventful.r="$r" --output-dir "$out/jit_evt" -q \
  > "$out/jit_evt.stats"
# the JIT session's generated share and host kernels: as the fast.so's (stream_setup.sh)
/usr/bin/python3 "$(dirname "$0")/../../testsuite/models/check_stats.py" "$out/jit_evt.stats" --what "evt (--jit)" \
  --min-share 0.74 --host TokenGate=9 --host EventfulAttention=1 --host Cast=36 --host Einsum=6 --host Gather=6 --host Pad=2 \
  --host Range=6
"$vtopt" run "$out/evt.so" --tag evt --stream "$out/clip.npy" --knob eventful.r="$r" --threads 2 -o "$out/so_evt" -q
n=0
for ref in "$out"/ref_evt/*.npy; do
  f=$(basename "$ref")
  "$vtopt" compare-outputs "$ref" "$out/jit_evt/$f" --max-rel-l2 1e-4 >/dev/null || { echo "JIT stream differs: $f"; exit 1; }
  "$vtopt" compare-outputs "$ref" "$out/so_evt/$f" --max-rel-l2 1e-4 >/dev/null || { echo "fast.so stream differs: $f"; exit 1; }
  n=$((n + 1))
done
[ "$n" -ge 12 ] || { echo "only $n frames"; exit 1; }
set +e
msg=$("$vtopt" run "$out/evt.so" --tag evt --stream "$out/clip.npy" --knob eventful.rr=3 -q 2>&1)
rc=$?
set -e
[ "$rc" -eq 2 ] || { echo "unknown knob: exit $rc"; exit 1; }
case "$msg" in *eventful.r*) ;; *) echo "unknown knob: message '$msg'"; exit 1 ;; esac
# the fast.so reports the same per-stream state (bytes, updated share) through <tag>_state_info
sj=$("$vtopt" "$m" --pass=eventful:r=16 --run --jit --stream "$out/clip.npy" --knob eventful.r="$r" | grep "^stream state")
ss=$("$vtopt" run "$out/evt.so" --tag evt --stream "$out/clip.npy" --knob eventful.r="$r" | grep "^stream state")
[ -n "$sj" ] && [ "$sj" = "$ss" ] || { echo "state info differs: JIT '$sj', fast.so '$ss'"; exit 1; }
# --profile (JIT) / VTOPT_PROFILE=1 when compiling a fast.so: the session prints time per generated
# kernel and host node at its end
prof=$("$vtopt" "$m" --pass=eventful:r=16 --run --jit --profile --stream "$out/clip.npy" -q 2>&1 >/dev/null)
case "$prof" in *"profile: "*" runs, "*gemm*TokenGate*) ;; *) echo "JIT profile missing: '$prof'"; exit 1 ;; esac
VTOPT_PROFILE=1 "$vtopt" "$m" --pass=eventful:r=16 --dim T=1 -q -o "$out/evt_prof.so" --tag evtp
prof=$("$vtopt" run "$out/evt_prof.so" --tag evtp --stream "$out/clip.npy" -q 2>&1 >/dev/null)
case "$prof" in *"profile: "*" runs, "*gemm*TokenGate*) ;; *) echo "fast.so profile missing: '$prof'"; exit 1 ;; esac
echo "stream_cli: $n frames equal (JIT, fast.so); profile printed"
