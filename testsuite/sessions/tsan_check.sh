#!/bin/sh
# tsan_check.sh — test_so_threads under ThreadSanitizer. A vtopt built with -fsanitize=thread
# crashes inside LLVM (uninstrumented libLLVM), so the library is compiled by the normal build's
# vtopt laid out as an installed tree whose lib/vtopt holds the TSan build's session libraries
# (codegen/so_toolchain.c links those): every fast.so session line is then TSan-checked, and the
# TSan-built test_so_threads loads it. Any race report fails (halt_on_error).
# usage: tsan_check.sh BUILD TSAN_BUILD WORK   (TSAN_BUILD: cmake -DVTOPT_TSAN=ON, targets vt_cg_so
#        test_so_threads; see the report in /work/notes or README)
set -eu
build="$1"; tsan="$2"; work="$3"
src="$(cd "$(dirname "$0")/../.." && pwd)"
rm -rf "$work"; mkdir -p "$work/bin" "$work/lib/vtopt"
cp "$build/vtopt" "$work/bin/"
cp "$tsan/codegen/libvt_cg_so.a" "$tsan/codegen/libvt_cg_rt.a" "$tsan/runtime/libvt_runtime.a" "$tsan/ir/libvt_ir.a" \
   "$work/lib/vtopt/"
"$work/bin/vtopt" "$src/testsuite/models/trained/glyphvit.onnx" --dim batch=2 -q --pass=tome:r=4 \
  -o "$work/threads.so" --tag threads
nm -D "$work/threads.so" | grep -q __tsan_ || { echo "tsan_check: the library is not instrumented"; exit 1; }
TSAN_OPTIONS="halt_on_error=1 ${TSAN_OPTIONS:-}" "$tsan/testsuite/sessions/test_so_threads" "$work/threads.so" threads
