#!/usr/bin/python3
"""gpu_bench_models.py OUTDIR — writes the timing cases of gpu_bench_data.py as ONNX models with
their inputs (NAME.in.<input>.npy). Run here (scripts/gpu_prepare.sh); needs onnx + numpy."""
import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper, save

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_bench_data import CASES, arrays  # noqa: E402

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for name, (kind, shp) in CASES.items():
    wts, ins = arrays(name)
    F = TensorProto.FLOAT
    if kind == "gemm":
        nodes = [helper.make_node("MatMul", ["x", "w"], ["out"])]
        inits = [numpy_helper.from_array(wts["w"], "w")]
    else:
        d = shp[3]
        nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]), helper.make_node("MatMul", ["q", "kt"], ["s"]),
                 helper.make_node("Mul", ["s", "scale"], ["ss"]), helper.make_node("Softmax", ["ss"], ["p"], axis=-1),
                 helper.make_node("MatMul", ["p", "v"], ["out"])]
        inits = [numpy_helper.from_array(np.array(1.0 / np.sqrt(d), dtype=np.float32), "scale")]
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info(n, F, list(a.shape)) for n, a in ins.items()],
                          [helper.make_tensor_value_info("out", F, None)], inits)
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), os.path.join(out, name + ".onnx"))
    for n, a in ins.items():
        np.save(os.path.join(out, "%s.in.%s.npy" % (name, n)), a)
