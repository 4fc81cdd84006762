#!/bin/sh
# gpu_zoo.sh VTOPT ZOO OUTDIR — the tiny zoo with --target cuda: the models the GPU path covers
# compile to PTX that ptxas assembles for sm_80 and sm_90; the others are refused (exit 2) with
# the nodes that have no GPU kernel named. Skips (77) without ptxas.
set -u
VTOPT=$1; ZOO=$2; OUT=$3
PTXAS=${PTXAS:-/usr/local/cuda/bin/ptxas}
if [ ! -x "$PTXAS" ]; then echo "SKIP: no ptxas at $PTXAS"; exit 77; fi
rm -rf "$OUT"; mkdir -p "$OUT"
fail=0
inputs() { for f in "$ZOO/$1".in.*.npy; do n=${f#"$ZOO/$1".in.}; printf ' --input %s=%s' "${n%.npy}" "$f"; done; }
for m in vit_tiny_op17 vit_tiny_op14 vit_tiny_mha_op14 vit_tiny_qkv_op16 decoder_tiny_projector; do
  for arch in sm_80 sm_90; do
    if "$VTOPT" "$ZOO/$m.onnx" $(inputs $m) -o "$OUT/$m.$arch.ptx" --gpu $arch -q > "$OUT/$m.log" 2>&1 &&
       "$PTXAS" -arch=$arch "$OUT/$m.$arch.ptx" -o "$OUT/$m.$arch.cubin" >> "$OUT/$m.log" 2>&1; then
      echo "ok: $m ($arch): $(grep -c '^\.visible \.entry' "$OUT/$m.$arch.ptx") kernels, ptxas ok"
    else echo "FAIL: $m ($arch):"; cat "$OUT/$m.log"; fail=1; fi
  done
done
# not covered yet: refused by name (Range, Cast, Gather, Cos / Sin, Tile, comparisons ...)
for m in decoder_tiny decoder_tiny_embed dit_tiny vggt_tiny vitstream_tiny; do
  "$VTOPT" "$ZOO/$m.onnx" $(inputs $m) -o "$OUT/$m.ptx" -q > "$OUT/$m.log" 2>&1; rc=$?
  if [ $rc -eq 2 ] && grep -q "refuses .* node" "$OUT/$m.log" && [ ! -e "$OUT/$m.ptx" ]; then
    echo "ok: $m refused: $(grep -o "refuses [0-9]* nodes\{0,1\}" "$OUT/$m.log"), $(grep -o "ops without a GPU kernel: [^;]*" "$OUT/$m.log")"
  else echo "FAIL: $m: expected a refusal (exit 2), got $rc:"; cat "$OUT/$m.log"; fail=1; fi
done
[ $fail = 0 ] && echo "PASS: tiny zoo with --target cuda"
exit $fail
