#!/usr/bin/python3
"""check_attention.py — runs the cases gen_attention.py wrote (DIR/cases.json) and checks:

  fuse   for every case: vtopt unfused (--no-canonicalize, the op's reference kernel) against
         vtopt with fuse-attention (interpreter, and for the fused cases compiled with --jit when --jit is given):
         rel. L2 <= --fuse-tol (default 1e-5) on every output, and --stats shows the case's rule
         matching exactly when the manifest says it fuses (else --explain gives a reason).
         With --jit, the compile's --stats must show the case's attention ops in generated
         attention kernels (one per fused op) and no host kernel but the mask preparation of
         JIT_HOST_ALLOWED (an integer or bool key mask turned into an additive bias).
  ort    for every case: ONNX Runtime (bench/ort_run.mjs) against vtopt unfused and fused:
         rel. L2 <= --ort-tol (default 1e-5) on every output.
  errors unsupported attributes fail with exit code 2 and a message naming node and attribute.
Exit 1 on any failure, with one line per failing check.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import helper, TensorProto

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def rel_l2(ref, got):
    ref = ref.astype(np.float64)
    got = got.astype(np.float64)
    if ref.shape != got.shape:
        return float("inf")
    fin = np.isfinite(ref)
    if not np.array_equal(fin, np.isfinite(got)) or not np.array_equal(ref[~fin], got[~fin]):
        return float("inf")
    d = np.linalg.norm((ref - got)[fin])
    n = np.linalg.norm(ref[fin])
    return d / n if n > 0 else d


def run(cmd, timeout=300):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return p.returncode, p.stdout


def vtopt_run(vt, case, root, out, extra):
    d = os.path.join(root, case["dir"])
    cmd = [vt, os.path.join(d, "model.onnx"), "--run", "--threads", "2", "--output-dir", out]
    for n in case["inputs"]:
        cmd += ["--input", "%s=%s" % (n, os.path.join(d, "in.%s.npy" % n))]
    return run(cmd + extra)


def compare_dirs(case, a, b, tol, what, fails):
    worst = 0.0
    for o in case["outputs"]:
        pa, pb = os.path.join(a, o + ".npy"), os.path.join(b, o + ".npy")
        if not os.path.exists(pa) or not os.path.exists(pb):
            fails.append("%s: %s: output %s missing" % (case["name"], what, o))
            return worst
        e = rel_l2(np.load(pa), np.load(pb))
        worst = max(worst, e)
        if not e <= tol:
            fails.append("%s: %s: output %s rel L2 %.3g > %.1g" % (case["name"], what, o, e, tol))
    return worst


# Host (interpreter) kernels a compiled fused case may keep, with how many: the com.microsoft
# ops' integer key masks become a float bias through a comparison and a Where on int/bool
# tensors, which the float32 elementwise generator does not take.
JIT_HOST_ALLOWED = {"Greater": 1, "Less": 1, "Where": 1}


def check_jit_stats(case, out, fails):
    """The --stats of a --jit run of a fused case: `count` generated attention kernels, and host
    kernels only from JIT_HOST_ALLOWED. Returns (nodes generated, nodes)."""
    m = re.search(r"^codegen: \d+ kernels:.*?, (\d+) attention,.*?; (\d+) of (\d+) nodes in generated kernels", out, re.M)
    if not m:
        fails.append("%s: --jit --stats printed no codegen summary" % case["name"])
        return 0, 0
    n_att = int(m.group(1))
    if n_att != case.get("count", 1):
        fails.append("%s: --jit generated %d attention kernel(s), expected %d" % (case["name"], n_att, case.get("count", 1)))
    host = {}
    for op in re.findall(r"^  \[\d+\] host kernel(?: via vt_run_node \(absent output\))? (\S+) '", out, re.M):
        host[op] = host.get(op, 0) + 1
    for op, k in sorted(host.items()):
        if k > JIT_HOST_ALLOWED.get(op, 0):
            fails.append("%s: --jit runs %d %s node(s) as host (interpreter) kernels, %d allowed" %
                         (case["name"], k, op, JIT_HOST_ALLOWED.get(op, 0)))
    return int(m.group(2)), int(m.group(3))


def check_fuse(args, cases, work, fails):
    worst = {"interp": 0.0, "jit": 0.0}
    gen = [0, 0]   # nodes in generated kernels, nodes: over the compiled cases
    for c in cases:
        un, fu, fj = (os.path.join(work, c["name"], s) for s in ("un", "fu", "jit"))
        rc, out = vtopt_run(args.vtopt, c, args.cases, un, ["--no-canonicalize", "-q"])
        if rc:
            fails.append("%s: unfused run failed (%d): %s" % (c["name"], rc, out.strip()[-300:]))
            continue
        rc, out = vtopt_run(args.vtopt, c, args.cases, fu, ["--stats", "--explain"])
        if rc:
            fails.append("%s: fused run failed (%d): %s" % (c["name"], rc, out.strip()[-300:]))
            continue
        n = c.get("count", 1)
        m = re.search(r"rule %s\s+matched (\d+) of (\d+)" % re.escape(c["rule"]), out)
        if not m or int(m.group(2)) != n or int(m.group(1)) != (n if c["fused"] else 0):
            fails.append("%s: expected rule %s to %s %d time(s), --stats says: %s" % (c["name"], c["rule"],
                         "match" if c["fused"] else "not match", n, m.group(0) if m else "no such rule"))
        if "blocks" in c:
            m = re.search(r"rule residual-block\s+matched (\d+) of", out)
            if not m or int(m.group(1)) != c["blocks"]:
                fails.append("%s: expected %d residual blocks, --stats says: %s" % (c["name"], c["blocks"],
                                                                                  m.group(0) if m else "nothing"))
        if not c["fused"] and "no match at step" not in out:
            fails.append("%s: not fused but --explain gives no reason" % c["name"])
        worst["interp"] = max(worst["interp"], compare_dirs(c, un, fu, args.fuse_tol, "fused vs unfused (interp)", fails))
        if args.jit and c["fused"]:   # unfused: the same graph as the reference
            rc, out = vtopt_run(args.vtopt, c, args.cases, fj, ["--jit", "--stats"])
            if rc:
                fails.append("%s: fused --jit run failed (%d): %s" % (c["name"], rc, out.strip()[-300:]))
                continue
            g, t = check_jit_stats(c, out, fails)
            gen[0] += g
            gen[1] += t
            worst["jit"] = max(worst["jit"], compare_dirs(c, un, fj, args.fuse_tol, "fused --jit vs unfused", fails))
    print("fuse: %d cases (%d fused); worst rel L2 fused vs unfused: interp %.2e%s" %
          (len(cases), sum(c["fused"] for c in cases), worst["interp"],
           ", jit %.2e" % worst["jit"] if args.jit else ""))
    if args.jit:
        print("fuse: compiled fused cases: %d of %d nodes in generated kernels" % (gen[0], gen[1]))


def check_ort(args, cases, work, fails):
    worst = {"unfused": 0.0, "fused": 0.0}
    skipped = [c for c in cases if c.get("ort_skip")]
    for c in skipped:
        print("ort: skip %s: %s" % (c["name"], c["ort_skip"]))
    cases = [c for c in cases if not c.get("ort_skip")]
    for c in cases:
        d = os.path.join(args.cases, c["dir"])
        ort, un, fu = (os.path.join(work, c["name"], s) for s in ("ort", "un", "fu"))
        cmd = [args.node, os.path.join(ROOT, "bench", "ort_run.mjs"), os.path.join(d, "model.onnx"), "--threads", "1",
               "--warmup", "0", "--runs", "1", "--quiet", "--output-dir", ort]
        for n in c["inputs"]:
            cmd += ["--input", "%s=%s" % (n, os.path.join(d, "in.%s.npy" % n))]
        rc, out = run(cmd)
        if rc:
            fails.append("%s: ONNX Runtime failed (%d): %s" % (c["name"], rc, out.strip()[-400:]))
            continue
        for sub, extra in (("unfused", ["--no-canonicalize", "-q"]), ("fused", ["-q"])):
            o = un if sub == "unfused" else fu
            rc, out = vtopt_run(args.vtopt, c, args.cases, o, extra)
            if rc:
                fails.append("%s: vtopt %s failed (%d): %s" % (c["name"], sub, rc, out.strip()[-300:]))
                continue
            worst[sub] = max(worst[sub], compare_dirs(c, ort, o, args.ort_tol, "ORT vs vtopt " + sub, fails))
    print("ort: %d cases; worst rel L2 against ONNX Runtime: unfused %.2e, fused %.2e" %
          (len(cases), worst["unfused"], worst["fused"]))


def check_errors(args, work, fails):
    """Unsupported configurations: exit code 2, message naming node and attribute/input."""
    f32 = TensorProto.FLOAT
    x = helper.make_tensor_value_info("x", f32, [1, 4, 8])
    y = helper.make_tensor_value_info("y", f32, None)
    w = helper.make_tensor("w", f32, [8, 24], [0.0] * 192)
    bad = [
        ("do_rotary", helper.make_node("Attention", ["x", "w"], ["y"], name="att0", domain="com.microsoft", num_heads=2,
                                       do_rotary=1), [w], [x], "do_rotary"),
        ("share_buffer", helper.make_node("Attention", ["x", "w"], ["y"], name="att1", domain="com.microsoft", num_heads=2,
                                          past_present_share_buffer=1), [w], [x], "past_present_share_buffer"),
        ("unknown_attr", helper.make_node("Attention", ["x", "w"], ["y"], name="att2", domain="com.microsoft", num_heads=2,
                                          rotary_interleaved=1), [w], [x], "rotary_interleaved"),
        ("packed_qkv", helper.make_node("MultiHeadAttention", ["q"], ["y"], name="mha0", domain="com.microsoft",
                                        num_heads=2), [], [helper.make_tensor_value_info("q", f32, [1, 4, 2, 3, 4])],
         "packed QKV"),
        ("no_heads", helper.make_node("Attention", ["x", "x", "x"], ["y"], name="att3"), [], [x], "q_num_heads"),
        ("scale0", helper.make_node("Attention", ["x", "x", "x"], ["y"], name="att4", q_num_heads=2, kv_num_heads=2,
                                    scale=0.0), [], [x], "scale"),
    ]
    for name, node, inits, ins, word in bad:
        g = helper.make_graph([node], name, ins, [y], initializer=inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 23), helper.make_opsetid("com.microsoft", 1)])
        m.ir_version = 9
        p = os.path.join(work, "bad_%s.onnx" % name)
        onnx.save(m, p)
        rc, out = run([args.vtopt, p, "--run", "--random-inputs", "-q"])
        if rc != 2 or node.name not in out or word not in out:
            fails.append("error case %s: want exit 2 naming '%s' and '%s', got %d: %s" % (name, node.name, word, rc,
                                                                                       out.strip()[-300:]))
    print("errors: %d unsupported configurations rejected" % len(bad))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["fuse", "ort", "errors"])
    ap.add_argument("--cases", required=True, help="gen_attention.py --out directory")
    ap.add_argument("--vtopt", required=True)
    ap.add_argument("--node", default=shutil.which("node"))
    ap.add_argument("--jit", action="store_true")
    ap.add_argument("--filter", default="")
    ap.add_argument("--fuse-tol", type=float, default=1e-5)
    ap.add_argument("--ort-tol", type=float, default=1e-5)
    args = ap.parse_args()
    with open(os.path.join(args.cases, "cases.json")) as f:
        cases = [c for c in json.load(f) if args.filter in c["name"]]
    fails = []
    work = tempfile.mkdtemp(prefix="vt_attn_")
    try:
        if args.mode == "fuse":
            check_fuse(args, cases, work, fails)
        elif args.mode == "ort":
            if not args.node:
                print("ort: node not found")
                return 1
            check_ort(args, cases, work, fails)
        else:
            check_errors(args, work, fails)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for f in fails:
        print("FAIL " + f)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
