#!/bin/sh
# gpu_prepare.sh OUTDIR [--gpu sm_80|sm_90] — prepares, on a machine with vtopt built (LLVM, no
# GPU needed), the tree scripts/gpu_check.sh runs on a GPU machine (which has no LLVM):
#   OUTDIR/bin/gpu_run                  runs a fast.so through its ABI with .npy files (libc only)
#   OUTDIR/cases/NAME.so                CUDA fast.so files: the kernel cases (codegen/tests/gpu_cases.py)
#                                       and the tiny zoo models the GPU path covers
#   OUTDIR/cases/NAME.in.*.npy          their inputs, NAME.cpu.out<i>.npy the CPU's outputs (vtopt --jit)
#   OUTDIR/bench/NAME.so                GEMM / attention timing cases (scripts/gpu/gpu_bench_data.py;
#                                       the GPU side regenerates their inputs and weights for PyTorch)
#   OUTDIR/gpu_check.py, gpu_bench_data.py, manifest.txt (NAME TAG INPUTS... per line)
# Keep OUTDIR under the device tool's carry limit (64 MiB): the bench .so files embed their weights
# (about 20 MiB in all); the timing cases' large inputs are not carried.
# Then, in a GPU session: run (device tool) with carry [OUTDIR] and the command
#   sh OUTDIR/gpu_check.sh OUTDIR
set -eu
OUT=$1; shift
GPU=sm_80
[ "${1:-}" = "--gpu" ] && GPU=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${VTOPT_BUILD:-$ROOT/build}
VTOPT=$B/vtopt
PY=/usr/bin/python3
rm -rf "$OUT"; mkdir -p "$OUT/bin" "$OUT/cases" "$OUT/bench" "$OUT/src"
cp "$B/vt_gpu_run" "$OUT/bin/gpu_run"
cp "$ROOT/scripts/gpu/gpu_check.py" "$ROOT/scripts/gpu/gpu_bench_data.py" "$OUT/"
cp "$ROOT/scripts/gpu_check.sh" "$OUT/"
: > "$OUT/manifest.txt"
$PY "$ROOT/codegen/tests/gpu_cases.py" "$OUT/src"
ZOO=${VTOPT_ZOO:-$B/zoo}
for m in vit_tiny_op17 vit_tiny_op14 vit_tiny_mha_op14 vit_tiny_qkv_op16 decoder_tiny_projector; do
  [ -e "$ZOO/$m.onnx" ] && cp "$ZOO/$m.onnx" "$ZOO"/$m.in.*.npy "$OUT/src/" || echo "note: no $ZOO/$m.onnx (generate the tiny zoo first)"
done
cd "$OUT/src"
for onnx in gpu_ew gpu_rows gpu_gemm gpu_layout gpu_conv gpu_attn vit_tiny_op17 vit_tiny_op14 vit_tiny_mha_op14 vit_tiny_qkv_op16 decoder_tiny_projector; do
  [ -e $onnx.onnx ] || continue
  order=$($PY -c "import onnx,sys; g=onnx.load(sys.argv[1]).graph; init={i.name for i in g.initializer}; print(' '.join(i.name for i in g.input if i.name not in init))" $onnx.onnx)
  args=""; ins=""
  for n in $order; do args="$args --input $n=$onnx.in.$n.npy"; ins="$ins $onnx.in.$n.npy"; cp $onnx.in.$n.npy ../cases/; done
  "$VTOPT" $onnx.onnx $args -o ../cases/$onnx.so --target cuda --gpu "$GPU" -q
  mkdir -p cpu_$onnx
  "$VTOPT" $onnx.onnx $args --run --jit --output-dir cpu_$onnx -q > /dev/null
  i=0
  for o in $($PY -c "import onnx,sys; print(' '.join(o.name.replace('/','_').replace(':','_') for o in onnx.load(sys.argv[1]).graph.output))" $onnx.onnx); do
    cp cpu_$onnx/$o.npy ../cases/$onnx.cpu.out$i.npy; i=$((i + 1))
  done
  echo "cases $onnx $ins" >> ../manifest.txt
done
$PY "$ROOT/scripts/gpu/gpu_bench_models.py" "$OUT/src/bench"
cd "$OUT/src/bench"
for f in *.onnx; do
  m=${f%.onnx}
  args=""; for a in $m.in.*.npy; do n=${a#$m.in.}; args="$args --input ${n%.npy}=$a"; done
  "$VTOPT" $f $args -o ../../bench/$m.so --target cuda --gpu "$GPU" -q
  echo "bench $m" >> ../../manifest.txt
done
cd "$OUT"; rm -rf src
du -sh "$OUT"
echo "prepared $OUT for $GPU: run 'sh gpu_check.sh .' in it on the GPU machine"
