#!/usr/bin/python3
"""gpu_cases.py OUTDIR — small ONNX models, one per GPU kernel kind (codegen/cg_emit_nvptx.c), with
fixed inputs (NAME.in.<input>.npy): the ptxas test (gpu_ptx.sh) compiles each to PTX, and
scripts/gpu_prepare.sh compiles them to CUDA fast.so files with the CPU's outputs for
scripts/gpu_check.sh. Deterministic (seed 0). Python: /usr/bin/python3 (onnx, numpy)."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(0)
F = TensorProto.FLOAT


def const(name, a):
    return numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)


def save(out, name, nodes, inputs, outputs, inits, opset=17):
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info(n, F, s) for n, s in inputs],
                          [helper.make_tensor_value_info(n, F, None) for n in outputs], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="gpu_cases")
    onnx.save(m, os.path.join(out, name + ".onnx"))
    for n, s in inputs:
        np.save(os.path.join(out, "%s.in.%s.npy" % (name, n)), rng.standard_normal(s).astype(np.float32))


def main(out):
    os.makedirs(out, exist_ok=True)
    # elementwise chain with broadcasts: last-axis bias, per-row scale, scalar, full-shape operand
    nodes = [helper.make_node("Add", ["x", "bias"], ["a"]), helper.make_node("Mul", ["a", "rs"], ["b"]),
             helper.make_node("Erf", ["b"], ["c"]), helper.make_node("Tanh", ["c"], ["d"]),
             helper.make_node("Sigmoid", ["x"], ["e"]), helper.make_node("Add", ["d", "e"], ["f"]),
             helper.make_node("Exp", ["f"], ["g"]), helper.make_node("Abs", ["g"], ["h"]),
             helper.make_node("Sqrt", ["h"], ["i"]), helper.make_node("Log", ["i"], ["j"]),
             helper.make_node("Relu", ["j"], ["k"]), helper.make_node("Sub", ["k", "y"], ["l"]),
             helper.make_node("Div", ["l", "two"], ["out"])]
    save(out, "gpu_ew", nodes, [("x", [2, 24, 40]), ("y", [2, 24, 40]), ("rs", [2, 24, 1])], ["out"],
         [const("bias", rng.standard_normal(40)), const("two", 2.0)])
    # row kernels: softmax, LayerNormalization, reductions
    nodes = [helper.make_node("Softmax", ["x"], ["sm"], axis=-1),
             helper.make_node("LayerNormalization", ["x", "g", "b"], ["ln"], axis=-1, epsilon=1e-5),
             helper.make_node("ReduceMean", ["x"], ["mean"], axes=[-1], keepdims=1),
             helper.make_node("ReduceMax", ["x"], ["mx"], axes=[-1], keepdims=1)]
    save(out, "gpu_rows", nodes, [("x", [3, 17, 300])], ["sm", "ln", "mean", "mx"],
         [const("g", rng.standard_normal(300)), const("b", rng.standard_normal(300))])
    # GEMM: MatMul + bias + GELU epilogue; Gemm transB with alpha; LayerNorm prologue
    nodes = [helper.make_node("LayerNormalization", ["x", "lg", "lb"], ["xn"], axis=-1, epsilon=1e-6),
             helper.make_node("MatMul", ["xn", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["h1"]),
             helper.make_node("Mul", ["h1", "c"], ["h2"]), helper.make_node("Erf", ["h2"], ["h3"]),
             helper.make_node("Add", ["h3", "one"], ["h4"]), helper.make_node("Mul", ["h1", "h4"], ["h5"]),
             helper.make_node("Mul", ["h5", "half"], ["h6"]), helper.make_node("Reshape", ["h6", "shp"], ["h7"]),
             helper.make_node("Gemm", ["h7", "w2", "b2"], ["out"], transB=1, alpha=0.5)]
    inits = [const("lg", rng.standard_normal(96)), const("lb", rng.standard_normal(96)),
             const("w1", rng.standard_normal((96, 130)) * 0.1), const("b1", rng.standard_normal(130)),
             const("c", 0.70710678), const("one", 1.0), const("half", 0.5),
             numpy_helper.from_array(np.array([-1, 130], dtype=np.int64), "shp"),
             const("w2", rng.standard_normal((70, 130)) * 0.1), const("b2", rng.standard_normal(70))]
    save(out, "gpu_gemm", nodes, [("x", [2, 67, 96])], ["out"], inits)
    # layout: a transpose and a copy (Identity of a computed value)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1, 3]),
             helper.make_node("Relu", ["t"], ["r"]), helper.make_node("Transpose", ["r"], ["out"], perm=[3, 1, 2, 0])]
    save(out, "gpu_layout", nodes, [("x", [2, 5, 7, 9])], ["out"], [])
    # Conv (bias, stride 2, padding, dilation 1) and a Concat (row-block copies)
    nodes = [helper.make_node("Conv", ["x", "w", "cb"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             helper.make_node("Concat", ["y", "y2"], ["out"], axis=1)]
    save(out, "gpu_conv", nodes, [("x", [2, 5, 13, 11]), ("y2", [2, 3, 7, 6])], ["out"],
         [const("w", rng.standard_normal((8, 5, 3, 3)) * 0.2), const("cb", rng.standard_normal(8))])
    # attention (fused by fuse-attention into ai.vtopt.Attention): softmax(Q K^T * s + mask) V
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]), helper.make_node("MatMul", ["q", "kt"], ["s"]),
             helper.make_node("Mul", ["s", "scale"], ["ss"]), helper.make_node("Add", ["ss", "mask"], ["sm"]),
             helper.make_node("Softmax", ["sm"], ["p"], axis=-1), helper.make_node("MatMul", ["p", "v"], ["out"])]
    save(out, "gpu_attn", nodes, [("q", [2, 3, 37, 40]), ("k", [2, 3, 45, 40]), ("v", [2, 3, 45, 24])], ["out"],
         [const("scale", 1.0 / np.sqrt(40.0)), const("mask", rng.standard_normal((1, 1, 37, 45)))])
    # an op without a GPU kernel (refused by name by --target cuda; not a kernel case)
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Cos", ["r"], ["out"])]
    save(out, "gpu_refused", nodes, [("x", [4, 8])], ["out"], [])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
