#!/usr/bin/env bash
# make demo: vtopt's main job on the bundled default model (a ViT-S/16 image classifier that the
# project's zoo script exports with torch at opset 17): load it, inspect it, run it on a real
# photo-sized input with the reference interpreter, and check the result against torch.
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
echo "== vtopt $zoo/$model.onnx --run ${inputs[*]} --runs 5 --output-dir $build/demo-out"
"$build/vtopt" "$zoo/$model.onnx" --run "${inputs[@]}" --runs 5 --output-dir "$build/demo-out"
echo
echo "== agreement with torch"
for ref in "$zoo/$model".ref.*.npy; do
  name=${ref#"$zoo/$model".ref.}; name=${name%.npy}
  printf '%s: ' "$name"
  "$build/vtopt" compare-outputs "$ref" "$build/demo-out/$name.npy" --max-rel-l2 1e-4
done
echo
echo "Not built yet: token-reduction passes (--pass=...) and LLVM codegen (-o fast.so); see README."
