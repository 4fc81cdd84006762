#!/bin/sh
# gpu_so.sh VTOPT SRC OUTDIR TEST_GPU_SO FAKE_CUDA — CUDA fast.so files (-o FILE.so --target cuda)
# of the GPU kernel cases (gpu_cases.py), each run through its ABI against the fake driver
# (test_gpu_so.c); `vtopt run` of one without a driver fails at create with the message, exit 2.
set -u
VTOPT=$1; SRC=$2; OUT=$3; TEST=$4; FAKE=$5
rm -rf "$OUT"; mkdir -p "$OUT"; cd "$OUT" || exit 1
/usr/bin/python3 "$SRC/codegen/tests/gpu_cases.py" . || { echo "FAIL: gpu_cases.py"; exit 1; }
fail=0
for m in gpu_gemm gpu_rows gpu_ew gpu_layout gpu_conv gpu_attn; do
  ins=""; args=""
  for f in $m.in.*.npy; do n=${f#$m.in.}; args="$args --input ${n%.npy}=$f"; ins="$ins $f"; done
  if ! "$VTOPT" $m.onnx $args -o $m.so --target cuda -q > $m.log 2>&1; then echo "FAIL: $m -o $m.so --target cuda:"; cat $m.log; fail=1; continue; fi
  # inputs in the graph's order (the signature's): gpu_cases.py writes them in that order, sorted here by name
  order=$(/usr/bin/python3 -c "import onnx,sys; print(' '.join(i.name for i in onnx.load(sys.argv[1]).graph.input))" $m.onnx)
  ins=""; for n in $order; do ins="$ins $m.in.$n.npy"; done
  if "$TEST" "$FAKE" "$OUT/$m.so" $m $ins > $m.test 2>&1; then echo "ok: $m: $(tail -1 $m.test)"
  else echo "FAIL: $m:"; cat $m.test; fail=1; fi
done
VTOPT_CUDA_DRIVER=/nonexistent/libcuda.so.1 "$VTOPT" run gpu_ew.so --input x=gpu_ew.in.x.npy > run.log 2>&1; rc=$?
if [ $rc -ne 2 ] || ! grep -q "no CUDA driver" run.log; then echo "FAIL: vtopt run without a driver: exit $rc:"; cat run.log; fail=1
else echo "ok: vtopt run without a driver: $(head -c 160 run.log)"; fi
[ $fail = 0 ] && echo "PASS: CUDA fast.so files against the fake driver"
exit $fail
