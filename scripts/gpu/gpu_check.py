#!/usr/bin/env python3
"""gpu_check.py DIR — on a GPU machine (no LLVM; numpy and PyTorch present), with the tree
scripts/gpu_prepare.sh made: every carried CUDA fast.so (kernel cases and tiny zoo models) run
through its ABI (bin/gpu_run) and compared with the CPU's outputs (relative L2 <= 1e-4, float32;
no TF32 in the library), then the GEMM / attention timing cases against PyTorch on the same GPU
(torch.matmul and scaled_dot_product_attention, TF32 off): correctness (rel L2 <= 1e-4 against
torch), time, ratio and % of the GPU's float32 peak. Exit 1 if any case is wrong."""
import os
import subprocess
import sys
import tempfile

import numpy as np

D = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
sys.path.insert(0, D)
from gpu_bench_data import CASES, arrays  # noqa: E402

TOL = 1e-4
RUN = os.path.join(D, "bin", "gpu_run")
bad = 0


def rel_l2(a, b):
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def gpu_run(lib, tag, runs, inputs):
    out = tempfile.mkdtemp()
    r = subprocess.run([RUN, lib, tag, str(runs), out] + inputs, capture_output=True, text=True)
    if r.returncode:
        return None, None, (r.stderr or r.stdout).strip()
    ms = float(r.stdout.split("median ")[1].split(" ms")[0])
    outs = []
    i = 0
    while os.path.exists(os.path.join(out, "out%d.npy" % i)):
        outs.append(np.load(os.path.join(out, "out%d.npy" % i)))
        i += 1
    return outs, ms, ""


try:
    import torch
    dev = torch.cuda.get_device_name(0)
except Exception as e:  # noqa: BLE001
    torch, dev = None, "no torch / no CUDA (%s)" % e
print("GPU: %s" % dev)
print("\n== correctness: CUDA fast.so vs the CPU's outputs (rel L2 <= %g)" % TOL)
lines = [l.split() for l in open(os.path.join(D, "manifest.txt")) if l.strip()]
for l in lines:
    if l[0] != "cases":
        continue
    name, ins = l[1], [os.path.join(D, "cases", f) for f in l[2:]]
    outs, ms, err = gpu_run(os.path.join(D, "cases", name + ".so"), name, 3, ins)
    if outs is None:
        print("FAIL %-24s %s" % (name, err))
        bad += 1
        continue
    worst = 0.0
    for i, o in enumerate(outs):
        ref = np.load(os.path.join(D, "cases", "%s.cpu.out%d.npy" % (name, i)))
        worst = max(worst, rel_l2(o.reshape(ref.shape), ref) if o.size == ref.size else float("inf"))
    ok = worst <= TOL
    bad += not ok
    print("%s %-24s rel L2 %.2e  %.3f ms/run (host tensors in and out)" % ("ok  " if ok else "FAIL", name, worst, ms))

# float32 peak (non-tensor-core FMA) by device name, TFLOP/s
PEAK = {"H100": 67.0 if "SXM" in dev or "HBM3" in dev else 51.0, "H200": 67.0, "A100": 19.5, "L40S": 91.6, "RTX 4090": 82.6}
peak = next((v for k, v in PEAK.items() if k in dev), None)
if torch is not None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    import torch.nn.functional as F
print("\n== timing vs PyTorch on the same GPU (median; ours: a fast.so run = copy in, kernels, copy out)")
print("%-22s %10s %12s %12s %8s %8s %s" % ("case", "ours ms", "torch h2h ms", "torch dev ms", "ratio", "%peak", "rel L2"))
if torch is None:
    print("SKIP: the timing cases need PyTorch with CUDA")
    bad += 1
for l in lines:
    if l[0] != "bench" or torch is None:
        continue
    name = l[1]
    kind, shp = CASES[name]
    wts, ins = arrays(name)
    tmp = tempfile.mkdtemp()
    paths = []
    for n, a in ins.items():
        p = os.path.join(tmp, n + ".npy")
        np.save(p, a)
        paths.append(p)
    outs, ms, err = gpu_run(os.path.join(D, "bench", name + ".so"), name, 20, paths)
    if outs is None:
        print("FAIL %-22s %s" % (name, err))
        bad += 1
        continue
    if kind == "gemm":
        m, k, n = shp
        flops = 2.0 * m * k * n
        w = torch.from_numpy(wts["w"]).cuda()
        xs = ins["x"]

        def dev_op(x, w=w):
            return torch.matmul(x, w)
    else:
        b, h, n, d = shp
        flops = 4.0 * b * h * n * n * d
        xs = None

        def dev_op(q, k, v):
            return F.scaled_dot_product_attention(q, k, v)
    host = list(ins.values())
    dev_in = [torch.from_numpy(a).cuda() for a in host]
    ref = dev_op(*dev_in).cpu().numpy()
    err = rel_l2(outs[0].reshape(ref.shape), ref)
    ok = err <= TOL
    bad += not ok

    def timed(fn, reps=20):
        ts = []
        for _ in range(reps + 1):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            torch.cuda.synchronize()
            ts.append(s.elapsed_time(e))
        return sorted(ts[1:])[reps // 2]
    t_dev = timed(lambda: dev_op(*dev_in))
    t_h2h = timed(lambda: dev_op(*[torch.from_numpy(a).cuda() for a in host]).cpu())
    pk = "%.1f%%" % (100.0 * flops / (ms * 1e-3) / (peak * 1e12)) if peak else "?"
    print("%-22s %10.3f %12.3f %12.3f %8.2f %8s %.1e %s" % (name, ms, t_h2h, t_dev, t_h2h / ms, pk, err, "" if ok else "FAIL"))
print("\nratio = torch host-to-host time / ours (>= 0.5 is the first version's target); %%peak of ours "
      "against %s TFLOP/s float32" % (peak or "unknown"))
print("RESULT: %s" % ("all cases correct" if not bad else "%d case(s) FAILED" % bad))
sys.exit(1 if bad else 0)
