"""portable_check.py — `vtopt -o out.onnx --portable` against vtopt's own output of the same rewrite.
For MODEL (zoo layout: MODEL.onnx, MODEL.in.<input>.npy) and a pass pipeline:
  1. vtopt's interpreter runs the rewrite (ai.vtopt ops) -> reference outputs;
  2. the rewrite is written with --portable: onnx.checker accepts it, no node is outside the
     default domain (and com.microsoft, which the zoo's mha export uses), the opset is >= 16;
  3. ONNX Runtime (bench/ort_run.mjs) runs it: every output within rel L2 <= 1e-4 of 1.;
  4. vtopt's interpreter runs the portable file too (same threshold).
With --expect-refusal TEXT, --portable must instead fail with exit 2 and TEXT in its message.
usage: portable_check.py --vtopt V --zoo DIR --model M --passes P --work DIR [--node N] [--expect-refusal T]"""
import argparse
import glob
import os
import subprocess
import sys

import numpy as np
import onnx

ap = argparse.ArgumentParser()
ap.add_argument("--vtopt", required=True)
ap.add_argument("--zoo", required=True)
ap.add_argument("--model", required=True)
ap.add_argument("--passes", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("--node", default="node")
ap.add_argument("--expect-refusal")
a = ap.parse_args()
here = os.path.dirname(os.path.abspath(__file__))
ort_run = os.path.join(here, "..", "..", "bench", "ort_run.mjs")
model = os.path.join(a.zoo, a.model + ".onnx")
work = os.path.join(a.work, a.model + "." + a.passes.replace(":", "_").replace(",", "_").replace("=", ""))
os.makedirs(work, exist_ok=True)
inputs = []
for f in sorted(glob.glob(os.path.join(a.zoo, a.model + ".in.*.npy"))):
    inputs += ["--input", "%s=%s" % (f[len(os.path.join(a.zoo, a.model + ".in.")):-4], f)]
portable = os.path.join(work, "portable.onnx")


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def rel_l2(x, y):
    x, y = x.astype(np.float64), y.astype(np.float64)
    return float(np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-30))


if a.expect_refusal:
    r = run([a.vtopt, model, "--pass=" + a.passes, "-q", "-o", portable, "--portable"])
    print(r.stderr.strip())
    if r.returncode != 2 or a.expect_refusal not in r.stderr or os.path.exists(portable):
        sys.exit("FAIL: expected exit 2 with '%s' and no file, got exit %d" % (a.expect_refusal, r.returncode))
    print("ok: refused")
    sys.exit(0)

ref_dir = os.path.join(work, "vtopt")
r = run([a.vtopt, model, "--pass=" + a.passes, "--run", "-q", "--output-dir", ref_dir] + inputs)
if r.returncode:
    sys.exit("FAIL: vtopt --run: " + r.stderr)
r = run([a.vtopt, model, "--pass=" + a.passes, "-q", "-o", portable, "--portable"])
if r.returncode:
    sys.exit("FAIL: vtopt --portable: " + r.stderr)
m = onnx.load(portable)
onnx.checker.check_model(m)
domains = {n.domain for n in m.graph.node} - {"", "ai.onnx", "com.microsoft"}
opset = {o.domain: o.version for o in m.opset_import}
if domains or opset.get("", 0) < 16 or "ai.vtopt" in opset:
    sys.exit("FAIL: non-standard domains %s / opsets %s" % (domains, opset))
ops = sorted({n.op_type for n in m.graph.node})
print("portable file: %d nodes, opset %d, ops %s" % (len(m.graph.node), opset[""], " ".join(ops)))
worst = 0.0
r = run([a.node, ort_run, portable, "--ref-dir", ref_dir, "--max-rel-l2", "1e-4", "--runs", "1", "--warmup", "0",
         "--output-dir", os.path.join(work, "ort"), "--quiet"] + inputs)
print(r.stdout.strip())
if r.returncode:
    sys.exit("FAIL: ONNX Runtime vs vtopt (exit %d): %s %s" % (r.returncode, r.stdout, r.stderr[-2000:]))
for f in sorted(glob.glob(os.path.join(ref_dir, "*.npy"))):
    e = rel_l2(np.load(os.path.join(work, "ort", os.path.basename(f))), np.load(f))
    print("ORT %s: rel L2 %.3g vs vtopt's %s" % (os.path.basename(f), e, a.passes))
    worst = max(worst, e)
r = run([a.vtopt, portable, "--run", "-q", "--output-dir", os.path.join(work, "interp")] + inputs)
if r.returncode:
    sys.exit("FAIL: vtopt --run of the portable file: " + r.stderr)
for f in sorted(glob.glob(os.path.join(ref_dir, "*.npy"))):
    e = rel_l2(np.load(os.path.join(work, "interp", os.path.basename(f))), np.load(f))
    print("interpreter on the portable file %s: rel L2 %.3g" % (os.path.basename(f), e))
    worst = max(worst, e)
if not worst <= 1e-4:
    sys.exit("FAIL: rel L2 %.3g > 1e-4" % worst)
print("ok")
