#!/bin/sh
# gpu_exec.sh VTOPT SRC OUTDIR GPU_RUN FAKE_CUDA CLANG ZOO — CUDA fast.so files executed end to end
# without a GPU: each model is compiled with -o X.so --target cuda --dump-llvm X.ll; the dumped GPU
# module (the same kernels as the PTX) is retargeted to x86-64 (NVVM intrinsics renamed to the
# emulator's functions, codegen/tests/gpu_emu.c) and built by clang-19 into an "execution library";
# the fake driver (VTOPT_FAKE_CUDA_EXEC) runs every launch of the library's host runtime on it. The
# outputs must match the CPU path's (vtopt --run --jit) at rel L2 <= 1e-4: the pointer table, slots,
# launches, elementwise chains, GEMM epilogues and the device bodies, checked where there is no GPU.
set -u
VTOPT=$1; SRC=$2; OUT=$3; RUN=$4; FAKE=$5; CLANG=$6; ZOO=$7
rm -rf "$OUT"; mkdir -p "$OUT"; cd "$OUT" || exit 1
/usr/bin/python3 "$SRC/codegen/tests/gpu_cases.py" . || { echo "FAIL: gpu_cases.py"; exit 1; }
for m in vit_tiny_op17 decoder_tiny_projector; do
  [ -e "$ZOO/$m.onnx" ] && cp "$ZOO/$m.onnx" "$ZOO"/$m.in.*.npy . 2>/dev/null
done
fail=0; n=0
for m in gpu_ew gpu_rows gpu_gemm gpu_layout gpu_conv gpu_attn vit_tiny_op17 decoder_tiny_projector; do
  [ -e $m.onnx ] || { echo "note: $m.onnx absent (tiny zoo not generated): skipped"; continue; }
  order=$(/usr/bin/python3 -c "import onnx,sys; g=onnx.load(sys.argv[1]).graph; init={i.name for i in g.initializer}; print(' '.join(i.name for i in g.input if i.name not in init))" $m.onnx)
  args=""; ins=""
  for i in $order; do args="$args --input $i=$m.in.$i.npy"; ins="$ins $m.in.$i.npy"; done
  if ! "$VTOPT" $m.onnx $args -o $m.so --target cuda --dump-llvm $m.ll -q > $m.log 2>&1; then echo "FAIL: $m: compile:"; cat $m.log; fail=1; continue; fi
  sed -e 's/^target datalayout = .*$//' -e 's/^target triple = .*$/target triple = "x86_64-pc-linux-gnu"/' \
      -e 's/@llvm\.nvvm\.read\.ptx\.sreg\.\([a-z]*\)\.\([xyz]\)/@vt_emu_\1_\2/g' -e 's/@llvm\.nvvm\.barrier0/@vt_emu_barrier/g' \
      -e 's/@llvm\.nvvm\.shfl\.sync\.bfly\.f32/@vt_emu_shfl_bfly/g' -e 's/@llvm\.nvvm\.ex2\.approx\.f/@exp2f/g' \
      -e 's/@llvm\.nvvm\.lg2\.approx\.f/@log2f/g' -e 's/@llvm\.nvvm\.sqrt\.rn\.f/@sqrtf/g' $m.ll > $m.x86.ll
  if grep -q "@llvm\.nvvm\." $m.x86.ll; then echo "FAIL: $m: NVVM intrinsics the emulator lacks: $(grep -o '@llvm\.nvvm\.[a-z0-9.]*' $m.x86.ll | sort -u | tr '\n' ' ')"; fail=1; continue; fi
  if ! "$CLANG" -O1 -fPIC -shared -Wno-override-module $m.x86.ll "$SRC/codegen/tests/gpu_emu.c" -o $m.exec.so -lpthread -lm > $m.cc.log 2>&1; then
    echo "FAIL: $m: building the execution library:"; head -20 $m.cc.log; fail=1; continue
  fi
  mkdir -p gpu_$m cpu_$m
  if ! VTOPT_CUDA_DRIVER="$FAKE" VTOPT_FAKE_CUDA_EXEC="$OUT/$m.exec.so" "$RUN" "./$m.so" $m 1 gpu_$m $ins > $m.run.log 2>&1; then
    echo "FAIL: $m: run:"; cat $m.run.log; fail=1; continue
  fi
  "$VTOPT" $m.onnx $args --run --jit --output-dir cpu_$m -q > /dev/null 2>&1 || { echo "FAIL: $m: CPU reference"; fail=1; continue; }
  i=0
  for o in $(/usr/bin/python3 -c "import onnx,sys; print(' '.join(o.name.replace('/','_').replace(':','_') for o in onnx.load(sys.argv[1]).graph.output))" $m.onnx); do
    if r=$("$VTOPT" compare-outputs cpu_$m/$o.npy gpu_$m/out$i.npy --max-rel-l2 1e-4); then echo "ok: $m output $o: $r"
    else echo "FAIL: $m output $o: $r"; fail=1; fi
    i=$((i + 1)); n=$((n + 1))
  done
done
[ $fail = 0 ] && echo "PASS: $n outputs of CUDA fast.so files executed on the emulator match the CPU (rel L2 <= 1e-4)"
exit $fail
