#!/bin/sh
# compare_labels.sh — `vtopt compare --labels`: on the trained glyphvit (its 64 held-out images)
# the reference strategy's accuracy equals torch's (argmax of the committed reference logits
# against the labels), every strategy's accuracy is in the table and the CSV, and a label file of
# the wrong length is refused (exit 2) with the counts.
# usage: compare_labels.sh VTOPT SRC_DIR WORK_DIR
set -eu
vtopt="$1"; src="$2"; work="$3"
t="$src/testsuite/models/trained"
mkdir -p "$work"
"$vtopt" compare "$t/glyphvit.onnx" --passes none,tome:r=4 --input "$t/glyphvit.in.pixel_values.npy" \
  --labels "$t/glyphvit.labels.npy" --runs 1 --out "$work/cmp" >"$work/cmp.txt" 2>/dev/null
cat "$work/cmp.txt"
/usr/bin/python3 - "$work/cmp.csv" "$t" <<'PY'
import csv, sys
import numpy as np
rows = list(csv.DictReader(open(sys.argv[1])))
ref = np.load(sys.argv[2] + "/glyphvit.ref.logits.npy"); labels = np.load(sys.argv[2] + "/glyphvit.labels.npy")
torch_acc = float((ref.argmax(-1) == labels).mean())
acc = {r["strategy"]: float(r["accuracy"]) for r in rows}
assert abs(acc["none"] - torch_acc) < 1e-9, (acc, torch_acc)
assert set(acc) == {"none", "tome:r=4"} and all(0 <= a <= 1 for a in acc.values()), acc
print("accuracy per strategy:", acc, "torch:", torch_acc)
PY
grep -q "^tome:r=4 .* [01]\.[0-9]\{4\}$" "$work/cmp.txt" || { echo "no accuracy column in the table"; exit 1; }
/usr/bin/python3 -c "import numpy as np; np.save('$work/short.npy', np.zeros(5, np.int64))"
set +e
"$vtopt" compare "$t/glyphvit.onnx" --passes none --input "$t/glyphvit.in.pixel_values.npy" \
  --labels "$work/short.npy" --runs 1 --out "$work/cmp2" >/dev/null 2>"$work/err.txt"
rc=$?
set -e
test "$rc" = 2 || { echo "wrong label count: exit $rc, expected 2"; exit 1; }
grep -q "5 labels for 64 rows" "$work/err.txt" || { cat "$work/err.txt"; exit 1; }
echo ok
