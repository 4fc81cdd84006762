#!/usr/bin/python3
"""Summarises a vt_conformance results file (--results FILE.tsv): overall pass rate, and the
pass rate over the cases all of whose ops are in issue 2's list of interpreter ops.

usage: /usr/bin/python3 testsuite/conformance/stats.py build/conformance-results.tsv [--by-op]
"""
import collections
import os
import sys

import onnx

ROOT = "/usr/include/onnx/backend/test/data"
ISSUE_OPS = set("""Add Sub Mul Div Pow Sqrt Reciprocal Neg Abs Exp Log Erf Tanh Sigmoid Relu LeakyRelu
HardSigmoid HardSwish Gelu Clip Min Max Where Equal Less Greater Not And Or Cast MatMul Gemm
Conv BatchNormalization LayerNormalization ReduceMean ReduceSum ReduceMax ReduceL2 Softmax
Transpose Reshape Flatten Squeeze Unsqueeze Concat Split Slice Gather GatherElements
ScatterElements ScatterND Expand Tile Shape Size ConstantOfShape Range Identity Dropout TopK
ArgMax CumSum Einsum Pad Resize""".split())


def ops_of(case):
    model = onnx.load(os.path.join(ROOT, case, "model.onnx"), load_external_data=False)
    return {n.op_type for n in model.graph.node if n.op_type != "Constant"}


def main():
    rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
    total = len(rows)
    passed = sum(r[1] == "pass" for r in rows)
    in_list = [r for r in rows if r[0].startswith("node/") and ops_of(r[0]) and ops_of(r[0]) <= ISSUE_OPS]
    in_pass = sum(r[1] == "pass" for r in in_list)
    print(f"all cases: {passed} / {total} pass ({100.0 * passed / max(total, 1):.1f}%)")
    print(f"node/ cases whose ops are all in issue 2's list: {in_pass} / {len(in_list)} pass "
          f"({100.0 * in_pass / max(len(in_list), 1):.1f}%)")
    if "--by-op" in sys.argv:
        by = collections.defaultdict(lambda: [0, 0])
        for r in rows:
            if r[0].startswith("node/"):
                for op in ops_of(r[0]):
                    by[op][0] += r[1] == "pass"
                    by[op][1] += 1
        for op, (p, t) in sorted(by.items()):
            if p < t:
                print(f"  {op:28s} {p}/{t}")


if __name__ == "__main__":
    main()
