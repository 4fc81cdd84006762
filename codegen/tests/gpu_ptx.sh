#!/bin/sh
# gpu_ptx.sh VTOPT SRC OUTDIR — the GPU path's PTX (issue 16): every kernel kind (gpu_cases.py:
# elementwise chain with broadcasts, row kernels, GEMM with epilogue and LayerNorm prologue,
# transposes, Conv, Concat row blocks, fused attention) compiled with -o FILE.ptx for sm_80 and sm_90 and assembled by ptxas; the kernels
# expected per case are present; --dump-llvm shows the kernel IR (addrspace(1), sreg intrinsics,
# nvvm.annotations); an op without a GPU kernel, a bad --gpu and --target cuda --run are refused
# (exit 2, named). Skips (exit 77) where /usr/local/cuda/bin/ptxas (or PTXAS) is absent.
set -u
VTOPT=$1; SRC=$2; OUT=$3
PTXAS=${PTXAS:-/usr/local/cuda/bin/ptxas}
if [ ! -x "$PTXAS" ]; then echo "SKIP: no ptxas at $PTXAS (the CUDA toolkit is not installed here)"; exit 77; fi
rm -rf "$OUT"; mkdir -p "$OUT"; cd "$OUT" || exit 1
/usr/bin/python3 "$SRC/codegen/tests/gpu_cases.py" . || { echo "FAIL: gpu_cases.py"; exit 1; }
fail=0
inputs() { for f in "$1".in.*.npy; do n=${f#"$1".in.}; printf ' --input %s=%s' "${n%.npy}" "$f"; done; }
check_case() {   # NAME ENTRY-PREFIX...
  m=$1; shift
  for arch in sm_80 sm_90; do
    if ! "$VTOPT" "$m.onnx" $(inputs "$m") -o "$m.$arch.ptx" --gpu "$arch" -q > "$m.$arch.log" 2>&1; then
      echo "FAIL: $m: -o $m.$arch.ptx --gpu $arch:"; cat "$m.$arch.log"; fail=1; continue
    fi
    grep -q "^\.target $arch" "$m.$arch.ptx" || { echo "FAIL: $m.$arch.ptx is not for $arch"; fail=1; }
    for k in "$@"; do
      grep -q "^\.visible \.entry $k" "$m.$arch.ptx" || { echo "FAIL: $m.$arch.ptx has no $k* kernel"; fail=1; }
    done
    if "$PTXAS" -arch="$arch" "$m.$arch.ptx" -o "$m.$arch.cubin" > "$m.$arch.ptxas" 2>&1; then
      echo "ok: $m ($arch): $(grep -c '^\.visible \.entry' "$m.$arch.ptx") kernels assembled by ptxas"
    else
      echo "FAIL: ptxas -arch=$arch $m.$arch.ptx:"; head -20 "$m.$arch.ptxas"; fail=1
    fi
  done
}
check_case gpu_ew vt_gpu_ew_
check_case gpu_rows vt_gpu_row_
check_case gpu_gemm vt_gpu_gemm_ln_ vt_gpu_gemm_
check_case gpu_layout vt_gpu_perm_ vt_gpu_ew_
check_case gpu_conv vt_gpu_conv_ vt_gpu_blocks_
check_case gpu_attn vt_gpu_attn_
# the elementwise chain is one kernel (fused), the GEMM epilogue is inlined (no calls left)
[ "$(grep -c '^\.visible \.entry' gpu_ew.sm_80.ptx)" = 1 ] || { echo "FAIL: gpu_ew is not one fused kernel"; fail=1; }
if grep -q "call" gpu_gemm.sm_80.ptx; then echo "FAIL: gpu_gemm's PTX still calls its epilogue"; fail=1; fi
# kernel IR
if "$VTOPT" gpu_gemm.onnx $(inputs gpu_gemm) -o dump.ptx --dump-llvm gpu_gemm.ll -q > dump.log 2>&1; then
  for p in 'nvvm.annotations' 'ptr addrspace(1)' 'llvm.nvvm.read.ptx.sreg' 'target triple = "nvptx64-nvidia-cuda"'; do
    grep -qF "$p" gpu_gemm.ll || { echo "FAIL: --dump-llvm of the GPU module lacks '$p'"; fail=1; }
  done
else echo "FAIL: --dump-llvm with -o FILE.ptx:"; cat dump.log; fail=1; fi
# refusals: exit 2 with the node and op named
expect_refusal() {   # WHAT PATTERN COMMAND...
  what=$1; pat=$2; shift 2
  "$@" > refuse.log 2>&1; rc=$?
  if [ $rc -ne 2 ] || ! grep -q "$pat" refuse.log; then
    echo "FAIL: $what: expected exit 2 and '$pat', got $rc:"; cat refuse.log; fail=1
  else echo "ok: $what refused: $(head -c 200 refuse.log)"; fi
}
expect_refusal "an op without a GPU kernel" "(Cos)" "$VTOPT" gpu_refused.onnx $(inputs gpu_refused) -o r.ptx
expect_refusal "--gpu sm_75" "sm_75" "$VTOPT" gpu_ew.onnx $(inputs gpu_ew) -o bad.ptx --gpu sm_75
expect_refusal "--target cuda --run" "target cuda" "$VTOPT" gpu_ew.onnx $(inputs gpu_ew) --target cuda --run
expect_refusal "--target gpu" "unknown target" "$VTOPT" gpu_ew.onnx $(inputs gpu_ew) --target gpu -o x.so
[ -e r.ptx ] && { echo "FAIL: a refused model left r.ptx"; fail=1; }
[ $fail = 0 ] && echo "PASS: GPU PTX for sm_80 and sm_90"
exit $fail
