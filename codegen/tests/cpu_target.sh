#!/bin/sh
# cpu_target.sh — a fast.so records the CPU it was built for and refuses, at create, a CPU that
# lacks a feature its code uses (never SIGILL); --cpu x86-64-v3 gives a portable AVX2 library.
# The CPU "without" a feature is simulated with VTOPT_CPU_HIDE (cg_cpu.c), which makes the
# library's own cpuid check read those features as absent. Uses the ABI fixture's tiny ViT.
# usage: cpu_target.sh VTOPT ABI_DIR OUT_DIR
set -u
vtopt="$1"; abi="$2"; out="$3"
mkdir -p "$out"
m="$abi/vit_tiny_op17.onnx"
x="$abi/vit_tiny_op17.in.pixel_values.npy"
fail() { echo "cpu_target: FAIL: $*"; exit 1; }
"$vtopt" "$m" --dim batch=2 -q -o "$out/host.so" --tag host || fail "host build"
"$vtopt" "$m" --dim batch=2 -q -o "$out/v3.so" --tag v3 --cpu x86-64-v3 || fail "x86-64-v3 build"
grep -a -q '"target":{"cpu":"x86-64-v3","isa":"avx2","features":"avx2,fma"}' "$out/v3.so" || fail "v3 signature"
# both run here and agree
"$vtopt" run "$out/host.so" --input "pixel_values=$x" -o "$out/host_out" >/dev/null || fail "host run"
"$vtopt" run "$out/v3.so" --input "pixel_values=$x" -o "$out/v3_out" >/dev/null || fail "v3 run"
"$vtopt" compare-outputs "$out/host_out/logits.npy" "$out/v3_out/logits.npy" --max-rel-l2 1e-4 || fail "host vs v3"
# a CPU without AVX2: both refuse at create with exit 2 and name the feature
for lib in host v3; do
  VTOPT_CPU_HIDE=avx2 "$vtopt" run "$out/$lib.so" --input "pixel_values=$x" >"$out/$lib.noavx2.txt" 2>&1
  rc=$?
  [ $rc -eq 2 ] || fail "$lib.so without avx2: exit $rc (want 2)"
  grep -q "CPU features this CPU lacks: .*avx2" "$out/$lib.noavx2.txt" || fail "$lib.so: no message naming avx2: $(cat "$out/$lib.noavx2.txt")"
done
# a library built for AVX-512 refuses a CPU without it; the portable one still runs there
VTOPT_CPU_HIDE=avx512f "$vtopt" run "$out/v3.so" --input "pixel_values=$x" >/dev/null 2>&1 || fail "v3.so without avx512f"
"$vtopt" "$m" --dim batch=2 -q -o "$out/v4.so" --tag v4 --cpu x86-64-v4 || fail "x86-64-v4 build"
VTOPT_CPU_HIDE=avx512f "$vtopt" run "$out/v4.so" --input "pixel_values=$x" >"$out/v4.noavx512.txt" 2>&1
rc=$?
[ $rc -eq 2 ] || fail "v4.so without avx512f: exit $rc (want 2)"
grep -q "built for x86-64-v4 (avx512).*lacks: avx512f" "$out/v4.noavx512.txt" || fail "v4.so message: $(cat "$out/v4.noavx512.txt")"
# bad target names: exit 2 with the name
"$vtopt" "$m" --dim batch=2 -q -o "$out/bad.so" --cpu pentium-9000 >"$out/bad.txt" 2>&1
[ $? -eq 2 ] && grep -q "pentium-9000" "$out/bad.txt" || fail "bad --cpu"
"$vtopt" "$m" --dim batch=2 -q -o "$out/bad.so" --cpu-features +avx9000 >"$out/bad.txt" 2>&1
[ $? -eq 2 ] && grep -q "avx9000" "$out/bad.txt" || fail "bad --cpu-features"
echo "cpu_target: ok"
