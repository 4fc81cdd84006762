#!/usr/bin/env bash
# make demo: vtopt's main job on the bundled default model (a ViT-S/16 image classifier that the
# project's zoo script exports with torch at opset 17): load it, inspect it, run it on a real
# photo-sized input with the reference interpreter and with the LLVM JIT, compile it to a
# self-contained fast.so, and check the results against torch.
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
echo "Token-reduction passes (--pass=tome, httm, ...) and the PTX path are not built yet; see README."
