#!/usr/bin/python3
"""Test fixtures for the frontend unit tests (test_frontend.c, test_bad_input.c).

    make_fixtures.py OUTDIR            writes every fixture under OUTDIR
    make_fixtures.py --compare A B     compares two ONNX models semantically (exit 1 on a difference)

Runs with Debian's /usr/bin/python3 (python3-onnx, numpy). Bad models are built with onnx.helper
and written without the checker."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def save(model, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def model(nodes, inputs, outputs, inits=(), value_info=(), opset=17, extra_opsets=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits), value_info=list(value_info))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)] + list(extra_opsets))
    m.ir_version = 8
    return m


def vi(name, dt, shape):
    return helper.make_tensor_value_info(name, dt, shape)


def typed(name, dt, dims, field, vals):
    t = TensorProto()
    t.name = name
    t.data_type = dt
    t.dims.extend(dims)
    getattr(t, field).extend(vals)
    return t


# ---------- good models ---------------------------------------------------------------------------

def roundtrip_model():
    W = numpy_helper.from_array(np.arange(20, dtype=np.float32).reshape(4, 5) / 8, "W")   # raw_data
    B = helper.make_tensor("B", TensorProto.FLOAT, [5], [0.5, -1, 2, -3, 4])               # float_data
    pads = numpy_helper.from_array(np.array([0, 1, 0, 2], dtype=np.int64), "pads")
    cshape = numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "cshape")
    maxc = helper.make_tensor("maxc", TensorProto.FLOAT, [], [6.0])
    nodes = [
        helper.make_node("Relu", ["mm"], ["r"], name="relu"),            # listed before its producer
        helper.make_node("MatMul", ["x", "W"], ["mm"], name="matmul"),
        helper.make_node("Add", ["r", "B"], ["a"], name=""),             # unnamed
        helper.make_node("Constant", [], ["shp"], name="c_shape", value_ints=[-1, 5]),
        helper.make_node("Reshape", ["a", "shp"], ["rs"], name="reshape"),
        helper.make_node("Constant", [], ["two"], name="c_two", value_float=2.0),
        helper.make_node("Mul", ["rs", "two"], ["m"], name="mul"),
        helper.make_node("Transpose", ["m"], ["t"], name="transpose", perm=[1, 0]),
        helper.make_node("LeakyRelu", ["t"], ["lr"], name="leaky", alpha=0.125),
        helper.make_node("Pad", ["lr", "pads"], ["padded"], name="pad", mode="constant"),
        helper.make_node("Constant", [], ["tens"], name="c_tensor",
                         value=numpy_helper.from_array(np.array([[1, 2], [3, 4]], dtype=np.int32))),
        helper.make_node("ConstantOfShape", ["cshape"], ["cos"], name="cos",
                         value=numpy_helper.from_array(np.array([3.5], dtype=np.float32))),
        helper.make_node("Clip", ["x", "", "maxc"], ["clip"], name="clip"),
        helper.make_node("Identity", ["tens"], ["tens_out"], name="ident"),
    ]
    inputs = [vi("x", TensorProto.FLOAT, ["N", 3, 4]), vi("W", TensorProto.FLOAT, [4, 5])]  # W: initializer too
    outputs = [vi("padded", TensorProto.FLOAT, [5, "M"]), vi("cos", TensorProto.FLOAT, [2, 3]),
               vi("clip", TensorProto.FLOAT, ["N", 3, None]), vi("tens_out", TensorProto.INT32, [2, 2])]
    value_info = [vi("mm", TensorProto.FLOAT, ["N", 3, 5])]
    m = model(nodes, inputs, outputs, [W, B, pads, cshape, maxc], value_info)
    m.producer_name = "make_fixtures"
    m.graph.doc_string = "ignored"
    # the checker wants topological order: check a sorted copy, keep the unsorted one
    sorted_m = onnx.ModelProto()
    sorted_m.CopyFrom(m)
    relu_node = sorted_m.graph.node[0]
    del sorted_m.graph.node[0]
    sorted_m.graph.node.insert(1, relu_node)
    onnx.checker.check_model(sorted_m)
    return m


def dtypes_model():
    inits = [
        typed("f16", TensorProto.FLOAT16, [3], "int32_data", [0x3C00, 0xC000, 0x3800]),
        typed("bf16", TensorProto.BFLOAT16, [2], "int32_data", [0x3F80, 0xC040]),
        typed("bool", TensorProto.BOOL, [4], "int32_data", [1, 0, 1, 1]),
        typed("u8", TensorProto.UINT8, [3], "int32_data", [0, 255, 7]),
        typed("i8", TensorProto.INT8, [3], "int32_data", [-128, 127, -1]),
        typed("i16", TensorProto.INT16, [2], "int32_data", [-32768, 5]),
        typed("u16", TensorProto.UINT16, [2], "int32_data", [65535, 1]),
        typed("i32", TensorProto.INT32, [2], "int32_data", [-5, 7]),
        typed("i64", TensorProto.INT64, [2], "int64_data", [-(2 ** 40), 3]),
        typed("u32", TensorProto.UINT32, [2], "uint64_data", [4294967295, 1]),
        typed("u64", TensorProto.UINT64, [2], "uint64_data", [2 ** 64 - 1, 0]),
        typed("f64", TensorProto.DOUBLE, [2], "double_data", [1.5, -2.25]),
        typed("f32", TensorProto.FLOAT, [1, 1], "float_data", [0.25]),
        typed("scalar", TensorProto.FLOAT, [], "float_data", [3.0]),
        numpy_helper.from_array(np.zeros((0, 3), dtype=np.float32), "empty"),
        numpy_helper.from_array(np.array([[1, -2], [3, -4]], dtype=np.int64), "raw_i64"),
        numpy_helper.from_array(np.array([1.0, -0.5], dtype=np.float16), "raw_f16"),
    ]
    nodes = [helper.make_node("Identity", ["x"], ["y"], name="id")]
    m = model(nodes, [vi("x", TensorProto.FLOAT, [2])], [vi("y", TensorProto.FLOAT, [2])], inits)
    onnx.checker.check_model(m)
    return m


def ext_tensor(name, dims, location, offset, length):
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend(dims)
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", offset), ("length", length)):
        if v is not None:
            e = t.external_data.add()
            e.key = k
            e.value = str(v)
    return t


def ext_model(location, offset=0, length=16, second=True):
    inits = [ext_tensor("w1", [4], location, offset, length)]
    nodes = [helper.make_node("Add", ["x", "w1"], ["y"], name="add1")]
    out = "y"
    if second:
        # offset 19: not 4-byte aligned, so the reader has to copy instead of mapping in place
        inits.append(ext_tensor("w2", [2], location, 19, 8))
        nodes.append(helper.make_node("Add", ["y", "w2"], ["z"], name="add2"))
        out = "z"
    return model(nodes, [vi("x", TensorProto.FLOAT, [4])], [vi(out, TensorProto.FLOAT, [4])], inits)


def write_external(out):
    d = os.path.join(out, "ext")
    os.makedirs(d, exist_ok=True)
    blob = bytearray(64)
    blob[0:16] = np.array([1, 2, 3, 4], dtype=np.float32).tobytes()
    blob[19:27] = np.array([10, 20], dtype=np.float32).tobytes()
    with open(os.path.join(d, "weights.bin"), "wb") as f:
        f.write(bytes(blob))
    os.makedirs(os.path.join(d, "sub"), exist_ok=True)
    with open(os.path.join(d, "sub", "w.bin"), "wb") as f:
        f.write(np.array([5, 6, 7, 8], dtype=np.float32).tobytes())
    with open(os.path.join(out, "outside.bin"), "wb") as f:
        f.write(np.zeros(16, dtype=np.float32).tobytes())
    link = os.path.join(d, "link.bin")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink("../outside.bin", link)
    save(ext_model("weights.bin"), os.path.join(d, "model.onnx"))
    save(ext_model("sub/w.bin", second=False), os.path.join(d, "subdir.onnx"))
    save(ext_model("../outside.bin", second=False), os.path.join(d, "escape_dotdot.onnx"))
    save(ext_model(os.path.abspath(os.path.join(out, "outside.bin")), second=False),
         os.path.join(d, "escape_abs.onnx"))
    save(ext_model("link.bin", second=False), os.path.join(d, "escape_link.onnx"))
    save(ext_model("weights.bin", offset=60, second=False), os.path.join(d, "past_end.onnx"))
    save(ext_model("missing.bin", second=False), os.path.join(d, "missing.onnx"))


# ---------- bad models ----------------------------------------------------------------------------

def bad_models():
    X = [vi("x", TensorProto.FLOAT, [2])]
    Y = [vi("y", TensorProto.FLOAT, [2])]
    relu = lambda i, o, name="n0": helper.make_node("Relu", [i], [o], name=name)
    b = {}
    b["unknown_op"] = model([helper.make_node("FooBar", ["x"], ["y"], name="n0")], X, Y)
    b["unknown_domain"] = model([helper.make_node("Relu", ["x"], ["y"], name="n0", domain="com.example")], X, Y,
                                extra_opsets=[helper.make_opsetid("com.example", 1)])
    b["wrong_arity"] = model([helper.make_node("Add", ["x"], ["y"], name="n0")], X, Y)
    b["too_many_outputs"] = model([helper.make_node("Relu", ["x"], ["y", "y2"], name="n0")], X, Y)
    b["undefined_input"] = model([helper.make_node("Add", ["x", "nope"], ["y"], name="n0")], X, Y)
    b["duplicate_value"] = model([relu("x", "y", "n0"), relu("x", "y", "n1")], X, Y)
    b["output_is_input"] = model([relu("x", "x", "n0"), relu("x", "y", "n1")], X, Y)
    b["cycle"] = model([helper.make_node("Add", ["x", "b"], ["a"], name="n0"), relu("a", "b", "n1"),
                        relu("b", "y", "n2")], X, Y)
    big = TensorProto()
    big.name = "big"
    big.data_type = TensorProto.FLOAT
    big.dims.extend([2 ** 40, 2 ** 40])
    big.raw_data = b"\0" * 16
    b["overflow_dims"] = model([relu("x", "y")], X, Y, [big])
    b["bad_attr"] = model([helper.make_node("Relu", ["x"], ["y"], name="n0", foo=1)], X, Y)
    b["attr_type"] = model([helper.make_node("LeakyRelu", ["x"], ["y"], name="n0", alpha=1)], X, Y)
    then_g = helper.make_graph([relu("x", "t", "inner")], "then", [], [vi("t", TensorProto.FLOAT, [2])])
    b["subgraph"] = model([helper.make_node("If", ["c"], ["y"], name="n0", then_branch=then_g, else_branch=then_g)],
                          [vi("c", TensorProto.BOOL, [])], Y)
    raw = TensorProto()
    raw.name = "w"
    raw.data_type = TensorProto.FLOAT
    raw.dims.extend([4])
    raw.raw_data = b"\0" * 8
    b["raw_size"] = model([helper.make_node("Add", ["x", "w"], ["y"], name="n0")], X, Y, [raw])
    b["typed_count"] = model([helper.make_node("Add", ["x", "w"], ["y"], name="n0")], X, Y,
                             [typed("w", TensorProto.FLOAT, [4], "float_data", [1, 2, 3])])
    b["missing_output"] = model([relu("x", "y")], X, [vi("zz", TensorProto.FLOAT, [2])])
    b["string_init"] = model([relu("x", "y")], X, Y,
                             [helper.make_tensor("s", TensorProto.STRING, [1], [b"hello"])])
    seq_in = helper.make_tensor_sequence_value_info("x", TensorProto.FLOAT, [2])
    b["sequence_input"] = model([relu("x", "y")], [seq_in], Y)
    b["no_shape_input"] = model([relu("x", "y")], [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)], Y)
    b["rank9_input"] = model([relu("x", "y")], [vi("x", TensorProto.FLOAT, [1] * 9)], Y)
    b["string_constant"] = model([helper.make_node("Constant", [], ["c"], name="n0", value_string="hi"),
                                  relu("x", "y", "n1")], X, Y)
    b["dup_init"] = model([relu("x", "y")], X, Y, [helper.make_tensor("w", TensorProto.FLOAT, [1], [1]),
                                                   helper.make_tensor("w", TensorProto.FLOAT, [1], [2])])
    b["bad_dtype_init"] = model([relu("x", "y")], X, Y, [typed("w", 14, [1], "float_data", [1, 2])])
    b["negative_dim_init"] = model([relu("x", "y")], X, Y, [typed("w", TensorProto.FLOAT, [-1], "float_data", [])])
    return b


def corrupt_npy(out):
    d = os.path.join(out, "npy")
    os.makedirs(d, exist_ok=True)
    good = os.path.join(d, "good_f32.npy")
    np.save(good, np.arange(6, dtype=np.float32).reshape(2, 3))
    data = open(good, "rb").read()
    w = lambda n, b: open(os.path.join(d, n), "wb").write(b)
    w("truncated_data.npy", data[:-5])
    w("truncated_header.npy", data[:20])
    w("bad_magic.npy", b"\x93NUMPX" + data[6:])
    w("bad_version.npy", data[:6] + b"\x09\x00" + data[8:])
    hdr_len = data[8] | (data[9] << 8)
    hdr = data[10:10 + hdr_len].decode()
    def with_header(h):
        h = h.rstrip().ljust(hdr_len - 1) + "\n"
        assert len(h) == hdr_len, h
        return data[:10] + h.encode() + data[10 + hdr_len:]
    w("fortran.npy", with_header(hdr.replace("False", "True")))
    w("bad_header.npy", with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3}"))
    w("big_endian.npy", with_header(hdr.replace("<f4", ">f4")))
    w("complex.npy", with_header(hdr.replace("<f4", "<c8")))
    w("size_mismatch.npy", with_header(hdr.replace("(2, 3)", "(2, 4)")))
    w("extra_data.npy", data + b"\0\0\0\0")
    # good files of every dtype, for reading back
    np.save(os.path.join(d, "scalar_f64.npy"), np.array(2.5, dtype=np.float64))
    np.save(os.path.join(d, "vec_i64.npy"), np.array([1, -2, 3], dtype=np.int64))
    np.save(os.path.join(d, "bool.npy"), np.array([[True, False]], dtype=np.bool_))
    np.save(os.path.join(d, "u8.npy"), np.array([0, 200, 255], dtype=np.uint8))
    np.save(os.path.join(d, "f16.npy"), np.array([1.0, -2.0], dtype=np.float16))
    np.save(os.path.join(d, "i16.npy"), np.array([-7], dtype=np.int16))
    np.save(os.path.join(d, "u64.npy"), np.array([2 ** 63], dtype=np.uint64))
    np.save(os.path.join(d, "empty.npy"), np.zeros((0, 4), dtype=np.float32))
    with open(os.path.join(d, "v2.npy"), "wb") as f:
        np.lib.format.write_array(f, np.array([7, 8], dtype=np.int32), version=(2, 0))
    with open(os.path.join(d, "v3.npy"), "wb") as f:
        np.lib.format.write_array(f, np.array([9], dtype=np.int8), version=(3, 0))


def tensor_pbs(out):
    d = os.path.join(out, "pb")
    os.makedirs(d, exist_ok=True)
    w = lambda n, t: open(os.path.join(d, n), "wb").write(t.SerializeToString())
    w("raw_f32.pb", numpy_helper.from_array(np.array([[1.5, -2], [0, 4]], dtype=np.float32), "a"))
    w("typed_i64.pb", typed("b", TensorProto.INT64, [3], "int64_data", [5, -6, 7]))
    w("typed_f16.pb", typed("c", TensorProto.FLOAT16, [2], "int32_data", [0x3C00, 0xBC00]))
    w("string.pb", helper.make_tensor("s", TensorProto.STRING, [1], [b"x"]))
    data = numpy_helper.from_array(np.arange(8, dtype=np.float32), "t").SerializeToString()
    open(os.path.join(d, "truncated.pb"), "wb").write(data[:len(data) - 7])


def main(out):
    os.makedirs(out, exist_ok=True)
    save(roundtrip_model(), os.path.join(out, "roundtrip.onnx"))
    save(dtypes_model(), os.path.join(out, "dtypes.onnx"))
    write_external(out)
    for name, m in bad_models().items():
        save(m, os.path.join(out, "bad", name + ".onnx"))
    corrupt_npy(out)
    tensor_pbs(out)


# ---------- semantic comparison of two models (round trip check) ----------------------------------

def consts(m):
    r = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "Constant":
            a = n.attribute[0]
            v = helper.get_attribute_value(a)
            if a.name == "value":
                v = numpy_helper.to_array(v)
            elif a.name == "value_float":
                v = np.array(v, dtype=np.float32)
            elif a.name == "value_floats":
                v = np.array(v, dtype=np.float32)
            else:
                v = np.array(v, dtype=np.int64)
            r[n.output[0]] = v
    return r


def norm_attr(a):
    v = helper.get_attribute_value(a)
    if isinstance(v, TensorProto):
        v = numpy_helper.to_array(v)
        return (a.type, v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, list):
        v = tuple(v)
    return (a.type, v)


def shape_of(v):
    t = v.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]


def compare(pa, pb):
    a, b = onnx.load(pa), onnx.load(pb)
    errs = []
    ca, cb = consts(a), consts(b)
    if sorted(ca) != sorted(cb):
        errs.append("constants differ: %s vs %s" % (sorted(ca), sorted(cb)))
    for k in ca:
        if k in cb and (ca[k].dtype != cb[k].dtype or ca[k].shape != cb[k].shape or not np.array_equal(ca[k], cb[k])):
            errs.append("constant %s differs: %r vs %r" % (k, ca[k], cb[k]))
    na = {tuple(n.output): n for n in a.graph.node if n.op_type != "Constant"}
    nb = {tuple(n.output): n for n in b.graph.node if n.op_type != "Constant"}
    if set(na) != set(nb):
        errs.append("node sets differ: %s vs %s" % (sorted(na), sorted(nb)))
    for k in na:
        if k not in nb:
            continue
        x, y = na[k], nb[k]
        if x.op_type != y.op_type or (x.domain or "") != (y.domain or "") or list(x.input) != list(y.input):
            errs.append("node %s differs" % (k,))
        if x.name and x.name != y.name:
            errs.append("node name %s vs %s" % (x.name, y.name))
        ax = {t.name: norm_attr(t) for t in x.attribute}
        ay = {t.name: norm_attr(t) for t in y.attribute}
        if ax != ay:
            errs.append("attributes of %s differ: %s vs %s" % (k, ax, ay))
    ia = [(v.name, v.type.tensor_type.elem_type, shape_of(v)) for v in a.graph.input if v.name not in ca]
    ib = [(v.name, v.type.tensor_type.elem_type, shape_of(v)) for v in b.graph.input if v.name not in cb]
    if ia != ib:
        errs.append("inputs differ: %s vs %s" % (ia, ib))
    oa = [(v.name, v.type.tensor_type.elem_type) for v in a.graph.output]
    ob = [(v.name, v.type.tensor_type.elem_type) for v in b.graph.output]
    if oa != ob:
        errs.append("outputs differ: %s vs %s" % (oa, ob))
    oa = {(o.domain if o.domain != "ai.onnx" else ""): o.version for o in a.opset_import}
    ob = {(o.domain if o.domain != "ai.onnx" else ""): o.version for o in b.opset_import}
    if oa != ob:
        errs.append("opsets differ: %s vs %s" % (oa, ob))
    for e in errs:
        print(e)
    return 1 if errs else 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
