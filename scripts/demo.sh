#!/usr/bin/env bash
# make demo: vtopt's main job on the bundled default model (a ViT-S/16 image classifier that the
# project's zoo script exports with torch at opset 17): load it, inspect it, run it on a real
# photo-sized input with the reference interpreter and with the LLVM JIT, compile it to a
# self-contained fast.so, check the results against torch, and compare ToMe token merging: accuracy
# per strategy on the trained glyphvit96's held-out images, then speed on the random-weight ViT-S.
set -euo pipefail
build=${1:-build}
zoo="$build/zoo"
model=vit_s16_op17
echo "== generating the default model ($model) with testsuite/models/gen_zoo.py"
/usr/bin/python3 testsuite/models/gen_zoo.py --only "$model" --out "$zoo"
echo
echo "== vtopt inspect $zoo/$model.onnx (first lines and op histogram)"
"$build/vtopt" inspect "$zoo/$model.onnx" > "$build/demo-inspect.txt"
sed -n '1,12p' "$build/demo-inspect.txt"
echo "  ..."
sed -n '/^op histogram/,$p' "$build/demo-inspect.txt"
echo
inputs=()
for f in "$zoo/$model".in.*.npy; do
  name=${f#"$zoo/$model".in.}; name=${name%.npy}
  inputs+=(--input "$name=$f")
done
echo "== vtopt $zoo/$model.onnx --run ${inputs[*]} --runs 5   (reference interpreter)"
"$build/vtopt" "$zoo/$model.onnx" --run "${inputs[@]}" --runs 5 --output-dir "$build/demo-out"
echo
echo "== vtopt $zoo/$model.onnx --run --jit ...   (LLVM ORC JIT, kernels specialised to this model and CPU)"
"$build/vtopt" "$zoo/$model.onnx" --run --jit "${inputs[@]}" --runs 5 --output-dir "$build/demo-jit"
echo
echo "== vtopt $zoo/$model.onnx -o $build/demo_vit.so --dim batch=1   (self-contained shared library)"
"$build/vtopt" "$zoo/$model.onnx" -o "$build/demo_vit.so" --dim batch=1
ls -l "$build/demo_vit.so" | awk '{printf "  %s: %.1f MB (weights pre-packed as read-only data)\n", $9, $5/1e6}'
echo
echo "== agreement with torch"
for ref in "$zoo/$model".ref.*.npy; do
  name=${ref#"$zoo/$model".ref.}; name=${name%.npy}
  for out in demo-out demo-jit; do
    printf '%-9s %s: ' "$out" "$name"
    "$build/vtopt" compare-outputs "$ref" "$build/$out/$name.npy" --max-rel-l2 1e-4
  done
done
echo
trained=testsuite/models/trained
echo "== token merging on a TRAINED model: glyphvit96 (digits over real photos, 145 tokens, 6 blocks),"
echo "   on 64 held-out images (fresh renders never trained on; $trained/README.md) with their labels:"
echo "   accuracy per strategy is a real accuracy here"
/usr/bin/python3 - "$trained/glyphvit96.in.u8.npy" "$build/demo-glyph96.npy" <<'PY'
import sys
import numpy as np
x = np.load(sys.argv[1])   # uint8 [64, 96, 96, 3]; normalised as scripts/train_vit.py does
mean = np.array([0.485, 0.456, 0.406], np.float32); std = np.array([0.229, 0.224, 0.225], np.float32)
np.save(sys.argv[2], ((x.astype(np.float32) / 255.0 - mean) / std).transpose(0, 3, 1, 2).copy())
PY
echo "== vtopt compare $trained/glyphvit96.onnx --passes none,tome:r=8,tome:r=16 --labels ... --jit"
"$build/vtopt" compare "$trained/glyphvit96.onnx" --passes none,tome:r=8,tome:r=16 \
  --input "$build/demo-glyph96.npy" --labels "$trained/glyphvit96.labels.npy" \
  --runs 3 --jit --out "$build/demo-compare-trained" 2>/dev/null
echo
echo "== speed only: vtopt compare $zoo/$model.onnx --passes none,tome:r=8,tome:r=13 --jit"
echo "   (ViT-S/16 with RANDOM weights: its top-1 and cosine columns mean nothing about accuracy, a"
echo "   random network's argmax flips under any change; read this table for latency and FLOPs only)"
"$build/vtopt" compare "$zoo/$model.onnx" --passes none,tome:r=8,tome:r=13 "${inputs[@]}" \
  --runs 10 --jit --out "$build/demo-compare" 2>/dev/null
echo
echo "Not built yet: the kvcache (HERMES) pass; topk and the CUDA path are first versions (see README: \"Not supported yet\")."
