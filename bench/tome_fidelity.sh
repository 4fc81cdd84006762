#!/usr/bin/env bash
# tome_fidelity.sh — ToMe fidelity on the trained ViT over its full held-out sets: for every r,
# top-1 agreement with the dense model and accuracy against the true labels, per split
# ("indist": fresh renders with the training fonts and backgrounds; "ood": fonts AND
# backgrounds never seen in training), 2000 images each. The images come from
# scripts/train_vit.py --render-only (deterministic; uint8, not committed); vtopt runs every
# strategy on them in chunks (interpreter, or --jit with JIT=1) and writes the logits; numpy only
# counts argmax matches. Prints one table per split.
#
# usage: bench/tome_fidelity.sh [BUILD_DIR=build] [MODEL=testsuite/models/trained/glyphvit96.onnx]
#                               [HELDOUT_DIR=BUILD_DIR/heldout] [THREADS=2]
# env R_LIST="1 2 4 8 12 16" (r = 0, the dense model, always runs first), SPLITS="indist ood",
#     CHUNK=250 (images per vtopt run), JIT=1 (compile each strategy with LLVM).
# The render arguments (--img 96 --name glyphvit96, default seed) must match the model's
# training run (NAME.json in the model's folder says how it was trained).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
model="${2:-$root/testsuite/models/trained/glyphvit96.onnx}"
held="${3:-$build/heldout}"
threads="${4:-2}"
rlist="${R_LIST:-1 2 4 8 12 16}"
splits="${SPLITS:-indist ood}"
chunk="${CHUNK:-250}"
name="$(basename "${model%.onnx}")"
img=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['input'][2])" "${model%.onnx}.json")
[ -f "$model" ] || { echo "tome_fidelity: $model not found" >&2; exit 2; }
mkdir -p "$held"
for s in $splits; do
  if [ ! -f "$held/$name.$s.u8.npy" ]; then
    echo "tome_fidelity: rendering the held-out sets into $held (once)" >&2
    /usr/bin/python3 "$root/scripts/train_vit.py" --render-only --heldout-dir "$held" --name "$name" --img "$img" >&2
    break
  fi
done
work="$build/tome_fidelity/$name"
rm -rf "$work"; mkdir -p "$work"
jit=(); [ "${JIT:-0}" = 1 ] && jit=(--jit)
for s in $splits; do
  # ImageNet-normalised float32 chunks [n,3,H,W]
  /usr/bin/python3 - "$held/$name.$s.u8.npy" "$work/$s" "$chunk" <<'EOF'
import sys, numpy as np
x = np.load(sys.argv[1]); out = sys.argv[2]; n = int(sys.argv[3])
mean = np.array([0.485, 0.456, 0.406], np.float32); std = np.array([0.229, 0.224, 0.225], np.float32)
for k in range(0, len(x), n):
    y = ((x[k:k + n].astype(np.float32) / 255.0 - mean) / std).transpose(0, 3, 1, 2)
    np.save(f'{out}.chunk{k // n:03d}.npy', np.ascontiguousarray(y))
EOF
  for r in 0 $rlist; do
    pass=(); [ "$r" = 0 ] || pass=(--pass="tome:r=$r")
    for c in "$work/$s".chunk*.npy; do
      k=$(basename "$c" .npy); k=${k##*.}
      "$build/vtopt" "$model" "${pass[@]}" --run "${jit[@]}" --threads "$threads" -q --input "pixel_values=$c" \
        --output-dir "$work/$s.r$r.$k"
    done
  done
done
/usr/bin/python3 - "$work" "$held" "$name" "$splits" "0 $rlist" <<'EOF'
import glob, sys, numpy as np
work, held, name, splits, rs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(), sys.argv[5].split()
for s in splits:
    y = np.load(f'{held}/{name}.{s}.labels.npy')
    pred = {}
    for r in rs:
        parts = sorted(glob.glob(f'{work}/{s}.r{r}.chunk*/logits.npy'))
        pred[r] = np.concatenate([np.load(p) for p in parts]).argmax(-1)
    n = len(y)
    print(f'\n{name}, split {s} ({n} held-out images): ToMe r per block vs dense (r=0)\n')
    print('| r | top-1 agreement with dense | accuracy | accuracy change |')
    print('|---:|---:|---:|---:|')
    a0 = (pred['0'] == y).mean()
    for r in rs:
        agree = (pred[r] == pred['0']).mean()
        acc = (pred[r] == y).mean()
        print(f'| {r} | {agree:.4f} ({int(round(agree * n))}/{n}) | {acc:.4f} | {100 * (acc - a0):+.2f} pts |')
EOF
