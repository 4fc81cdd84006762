#!/usr/bin/python3
"""gen_attention.py — small test models for the exported attention ops (ir/ops_attention.def).

Writes, under --out DIR:
  node/test_attention_*/   the ONNX backend cases of the Attention op (opset 23), same names and
                           configurations as onnx/backend/test/case/node/attention.py (ONNX >= 1.19;
                           Debian's libonnx-testdata 1.12 predates the op), in the backend layout:
                           model.onnx, test_data_set_0/input_*.pb and output_*.pb.
  contrib/test_ms_*/       com.microsoft.MultiHeadAttention and com.microsoft.Attention cases in the
                           same layout.
  model/test_vit_*/        a two-block pre-norm ViT encoder whose attention is the ONNX Attention op
                           (3-D form; torch 1.13's exporter cannot emit opset 23, so it is built here).
  Every case also has in.<input>.npy files (for vtopt --input / bench/ort_run.mjs) and
  DIR/cases.json: per case its directory, inputs, outputs and whether fuse-attention should rewrite
  it (and with which rule) or leave it (softcap, a read qk_matmul_output).
Expected outputs come from the numpy reference below, written from the ONNX operator text and
ONNX Runtime's contrib operator documentation, with the behaviour choices ONNX Runtime 1.30 makes
where the text is open (causal alignment, qk_matmul_output modes, masked qk values = -FLT_MAX,
contrib masks add mask_filter_value). check_attention.py compares vtopt with these and with ORT.
Inputs are uniform in [0, 1) like the ONNX backend cases (seeded per case).
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLT_MAX = np.finfo(np.float32).max


# ---------- numpy reference ----------------------------------------------------------------------

def softmax_rows(x):
    """Softmax over the last axis; -inf entries get 0, a row with no finite entry is all 0."""
    out = np.zeros_like(x)
    finite = np.isfinite(x)
    any_f = finite.any(-1, keepdims=True)
    mx = np.where(any_f, np.max(np.where(finite, x, -np.inf), -1, keepdims=True), 0.0)
    e = np.where(finite, np.exp(np.where(finite, x, 0.0) - mx), 0.0)
    s = e.sum(-1, keepdims=True)
    np.divide(e, s, out=out, where=s > 0)
    return out


def core(q, k, v, scale, add=(), keep=None, causal_off=None, softcap=0.0, qk_mode=None):
    """q [B,H,S,D], k [B,Hkv,T,D], v [B,Hkv,T,Dv] (float64). Returns Y [B,H,S,Dv], qk or None."""
    H, Hkv = q.shape[1], k.shape[1]
    k = np.repeat(k, H // Hkv, axis=1)
    v = np.repeat(v, H // Hkv, axis=1)
    s = (q @ np.swapaxes(k, -1, -2)) * scale
    qk = s.copy() if qk_mode == 0 else None
    if softcap > 0:
        s = softcap * np.tanh(s / softcap)
    if qk_mode == 1:
        qk = s.copy()
    for a in add:
        s = s + a
    S, T = s.shape[-2:]
    excl = np.zeros(s.shape, bool)
    if keep is not None:
        excl |= ~np.broadcast_to(keep, s.shape)
    if causal_off is not None:
        i = np.arange(S)[:, None]
        j = np.arange(T)[None, :]
        excl |= np.broadcast_to(j > i + causal_off, s.shape)
    s = np.where(excl, -np.inf, s)
    if qk_mode == 2:
        qk = np.where(np.isinf(s) & (s < 0), -FLT_MAX, s)
    p = softmax_rows(s)
    if qk_mode == 3:
        qk = p
    return p @ v, qk


def heads(x, n):
    """[B,N,H*D] -> [B,H,N,D]"""
    B, N, HD = x.shape
    return x.reshape(B, N, n, HD // n).transpose(0, 2, 1, 3)


def unheads(y):
    B, H, S, D = y.shape
    return y.transpose(0, 2, 1, 3).reshape(B, S, H * D)


def onnx_attention_ref(ins, attrs, n_out):
    Q, K, V = [ins[n].astype(np.float64) for n in ("Q", "K", "V")]
    rank = Q.ndim
    if rank == 3:
        Q, K, V = heads(Q, attrs["q_num_heads"]), heads(K, attrs["kv_num_heads"]), heads(V, attrs["kv_num_heads"])
    P = 0
    if "past_key" in ins:
        P = ins["past_key"].shape[2]
        K = np.concatenate([ins["past_key"].astype(np.float64), K], 2)
        V = np.concatenate([ins["past_value"].astype(np.float64), V], 2)
    scale = attrs.get("scale", 1.0 / np.sqrt(Q.shape[-1]))
    add, keep = [], None
    m = ins.get("attn_mask")
    if m is not None:
        if m.dtype == np.bool_:
            keep = m
        else:
            add.append(m.astype(np.float64))
    y, qk = core(Q, K, V, scale, add, keep, P if attrs.get("is_causal") else None, attrs.get("softcap", 0.0),
                 attrs.get("qk_matmul_output_mode", 0) if n_out > 3 else None)
    outs = [unheads(y) if rank == 3 else y, K, V, qk]
    return [o.astype(np.float32) if o is not None else None for o in outs[:n_out]]


def ms_mask_add(mask, B, S, T, causal_off, filt):
    """ONNX Runtime's contrib mask: mask_filter_value where a key is masked or in the future."""
    mk = np.zeros((B, S, T), bool)
    if mask is not None:
        if mask.ndim == 1:
            mk |= np.arange(T)[None, None, :] >= mask[:, None, None]
        elif mask.ndim == 2:
            mk |= (mask <= 0)[:, None, :]
        else:
            mk |= mask <= 0
    if causal_off is not None:
        mk |= (np.arange(T)[None, :] > np.arange(S)[:, None] + causal_off)[None]
    return np.where(mk, filt, 0.0)[:, None, :, :]


def ms_core(q, k, v, N, attrs, mask, abias, pk, pv):
    """q [B,S,Hq], k [B,L,Hq], v [B,L,Hv] after bias; returns output, present K, present V."""
    q4, k4, v4 = heads(q, N), heads(k, N), heads(v, N)
    P = 0
    if pk is not None:
        P = pk.shape[2]
        k4 = np.concatenate([pk.astype(np.float64), k4], 2)
        v4 = np.concatenate([pv.astype(np.float64), v4], 2)
    B, _, S, D = q4.shape
    T = k4.shape[2]
    scale = attrs.get("scale", 0.0) or 1.0 / np.sqrt(D)
    add = []
    if mask is not None or attrs.get("unidirectional"):
        add.append(ms_mask_add(mask, B, S, T, P if attrs.get("unidirectional") else None,
                               attrs.get("mask_filter_value", -10000.0)))
    if abias is not None:
        add.append(abias.astype(np.float64))
    y, _ = core(q4, k4, v4, scale, add)
    return unheads(y), k4, v4


def mha_ref(ins, attrs, n_out):
    N = attrs["num_heads"]
    q, k, v = [ins[n].astype(np.float64) for n in ("query", "key", "value")]
    if "bias" in ins:
        b = ins["bias"].astype(np.float64)
        H = q.shape[2]
        q, k, v = q + b[:H], k + b[H:2 * H], v + b[2 * H:]
    y, K, V = ms_core(q, k, v, N, attrs, ins.get("key_padding_mask"), ins.get("attention_bias"),
                      ins.get("past_key"), ins.get("past_value"))
    return [o.astype(np.float32) for o in [y, K, V][:n_out]]


def msa_ref(ins, attrs, n_out):
    N = attrs["num_heads"]
    x, w = ins["input"].astype(np.float64), ins["weights"].astype(np.float64)
    xw = x @ w
    if "bias" in ins:
        xw = xw + ins["bias"].astype(np.float64)
    hs = attrs.get("qkv_hidden_sizes", [w.shape[1] // 3] * 3)
    q, k, v = xw[..., :hs[0]], xw[..., hs[0]:hs[0] + hs[1]], xw[..., hs[0] + hs[1]:]
    past = ins.get("past")
    y, K, V = ms_core(q, k, v, N, attrs, ins.get("mask_index"), ins.get("attention_bias"),
                      past[0] if past is not None else None, past[1] if past is not None else None)
    if n_out == 1:
        return [y.astype(np.float32)]
    return [y.astype(np.float32), np.stack([K, V]).astype(np.float32)]


# ---------- cases --------------------------------------------------------------------------------

def onnx_cases():
    """(name, inputs, attrs, n_out, fused) mirroring onnx/backend/test/case/node/attention.py."""
    cases = []
    r = np.random.rand
    f32 = np.float32
    for rank in (4, 3):
        pre = "test_attention_%dd" % rank
        variants = [("", 3, 8), ("_gqa", 9, 8), ("_diff_heads_sizes", 3, 10)]
        for suffix, hq, dv in variants:
            def qkv(S=4, L=6):
                if rank == 4:
                    return {"Q": r(2, hq, S, 8).astype(f32), "K": r(2, 3, L, 8).astype(f32), "V": r(2, 3, L, dv).astype(f32)}
                return {"Q": r(2, S, hq * 8).astype(f32), "K": r(2, L, 24).astype(f32), "V": r(2, L, 3 * dv).astype(f32)}
            heads_attrs = {} if rank == 4 else {"q_num_heads": hq, "kv_num_heads": 3}
            cases.append((pre + suffix, qkv(), dict(heads_attrs), 1, True))
            cases.append((pre + suffix + "_scaled", qkv(), dict(heads_attrs, scale=1e-2), 1, True))
            cases.append((pre + suffix + "_causal", qkv(), dict(heads_attrs, is_causal=1), 1, True))
            ins = qkv()
            ins["attn_mask"] = r(4, 6).astype(f32)
            cases.append((pre + suffix + "_attn_mask", ins, dict(heads_attrs), 1, True))
            ins = qkv()
            cases.append((pre + suffix + "_softcap", ins, dict(heads_attrs, softcap=2.0 if rank == 4 else 3.0), 1, False))
            ins = qkv()
            ins["attn_mask"] = r(4, 18).astype(f32)
            ins["past_key"] = r(2, 3, 12, 8).astype(f32)
            ins["past_value"] = r(2, 3, 12, dv).astype(f32)
            cases.append((pre + suffix + "_with_past_and_present", ins, dict(heads_attrs), 3, True))
        ha = {} if rank == 4 else {"q_num_heads": 3, "kv_num_heads": 3}

        def base(S=4, L=6):
            if rank == 4:
                return {"Q": r(2, 3, S, 8).astype(f32), "K": r(2, 3, L, 8).astype(f32), "V": r(2, 3, L, 8).astype(f32)}
            return {"Q": r(2, S, 24).astype(f32), "K": r(2, L, 24).astype(f32), "V": r(2, L, 24).astype(f32)}
        for mname, mshape, causal in (("_attn_mask_3d", (2, 1, 4, 6), 0), ("_attn_mask_3d_causal", (2, 1, 4, 6), 1),
                                      ("_attn_mask_4d", (2, 3, 4, 6), 0), ("_attn_mask_4d_causal", (2, 3, 4, 6), 1)):
            ins = base()
            ins["attn_mask"] = r(*mshape).astype(f32)
            cases.append((pre + mname, ins, dict(ha, is_causal=causal), 1, True))
        for mname, mshape in (("_attn_mask_bool", (4, 6)), ("_attn_mask_bool_4d", (2, 3, 4, 6))):
            ins = base()
            ins["attn_mask"] = r(*mshape) < 0.7   # some keys masked (the ONNX cases' masks are all True)
            ins["attn_mask"][..., 0] = True
            cases.append((pre + mname, ins, dict(ha), 1, True))
        # qk_matmul_output: the scores output is read -> not fused
        for mode, nm, cap in ((0, "_with_qk_matmul", 0.0), (1, "_with_qk_matmul_bias", 0.0),
                              (2, "_with_qk_matmul_softcap", 2.0), (3, "_with_qk_matmul_softmax", 0.0)):
            ins = base()
            if mode:
                ins["attn_mask"] = r(4, 6).astype(f32)
            a = dict(ha, qk_matmul_output_mode=mode)
            if cap:
                a["softcap"] = cap
            cases.append((pre + nm, ins, a, 4, False))
        for nm, mshape, causal, mode in (("_with_past_and_present_qk_matmul", (4, 18), 0, 0),
                                         ("_with_past_and_present_qk_matmul_bias", (4, 18), 0, 1),
                                         ("_with_past_and_present_qk_matmul_bias_3d_mask", (2, 1, 4, 18), 0, 1),
                                         ("_with_past_and_present_qk_matmul_bias_4d_mask", (2, 3, 4, 18), 0, 1),
                                         ("_with_past_and_present_qk_matmul_bias_3d_mask_causal", (2, 1, 4, 18), 1, 1),
                                         ("_with_past_and_present_qk_matmul_bias_4d_mask_causal", (2, 3, 4, 18), 1, 1),
                                         ("_with_past_and_present_qk_matmul_softmax", (4, 18), 0, 3)):
            ins = base()
            ins["attn_mask"] = r(*mshape).astype(f32)
            ins["past_key"] = r(2, 3, 12, 8).astype(f32)
            ins["past_value"] = r(2, 3, 12, 8).astype(f32)
            cases.append((pre + nm, ins, dict(ha, is_causal=causal, qk_matmul_output_mode=mode), 4, False))
        # self-attention with a KV cache and causal: ai.vtopt's own causal (S == L)
        ins = base(S=4, L=4)
        ins["past_key"] = r(2, 3, 5, 8).astype(f32)
        ins["past_value"] = r(2, 3, 5, 8).astype(f32)
        cases.append((pre + "_causal_self_with_past", ins, dict(ha, is_causal=1), 3, True))
    return cases


def contrib_cases():
    """(name, op, inputs, attrs, n_out, fused)"""
    r = np.random.rand
    f32 = np.float32
    cases = []
    B, S, N, Hd = 2, 4, 2, 16

    def mha(name, L=4, Hv=16, bias=True, mask=None, abias=False, P=0, n_out=1, fused=True, **attrs):
        ins = {"query": r(B, S, Hd).astype(f32), "key": r(B, L, Hd).astype(f32), "value": r(B, L, Hv).astype(f32)}
        if bias:
            ins["bias"] = (r(2 * Hd + Hv) - 0.5).astype(f32)
        T = P + L
        if mask == "2d":
            m = (r(B, T) < 0.7).astype(np.int32)
            m[:, 0] = 1
            ins["key_padding_mask"] = m
        elif mask == "len":
            ins["key_padding_mask"] = np.array([T - 1, 2], np.int32)[:B]
        elif mask == "3d":
            m = (r(B, S, T) < 0.7).astype(np.int32)
            m[:, :, 0] = 1
            ins["key_padding_mask"] = m
        if abias:
            ins["attention_bias"] = r(1, N, S, T).astype(f32)
        if P:
            ins["past_key"] = r(B, N, P, Hd // N).astype(f32)
            ins["past_value"] = r(B, N, P, Hv // N).astype(f32)
        cases.append((name, "MultiHeadAttention", ins, dict(attrs, num_heads=N), n_out, fused))

    mha("test_ms_mha")
    mha("test_ms_mha_no_bias", bias=False)
    mha("test_ms_mha_cross", L=6)
    mha("test_ms_mha_v_hidden", Hv=8)
    mha("test_ms_mha_scale", scale=0.3)
    mha("test_ms_mha_mask_2d", mask="2d")
    mha("test_ms_mha_mask_lengths", mask="len")
    mha("test_ms_mha_mask_3d", mask="3d")
    mha("test_ms_mha_attention_bias", abias=True, mask="2d")
    mha("test_ms_mha_past", P=3, n_out=3, mask="2d")
    mha("test_ms_mha_unidirectional", unidirectional=1)
    mha("test_ms_mha_unidirectional_past", unidirectional=1, P=3, n_out=3)
    mha("test_ms_mha_filter", mask="2d", mask_filter_value=-30.0)

    def msa(name, Din=12, hs=(16, 16, 16), bias=True, mask=None, abias=False, P=0, n_out=1, fused=True, qkv_attr=False,
            **attrs):
        cols = sum(hs)
        ins = {"input": r(B, S, Din).astype(f32), "weights": (r(Din, cols) - 0.5).astype(f32)}
        if bias:
            ins["bias"] = (r(cols) - 0.5).astype(f32)
        T = P + S
        if mask == "2d":
            m = (r(B, T) < 0.7).astype(np.int32)
            m[:, 0] = 1
            ins["mask_index"] = m
        elif mask == "len":
            ins["mask_index"] = np.array([T - 1, 2], np.int32)[:B]
        elif mask == "3d":
            m = (r(B, S, T) < 0.7).astype(np.int32)
            m[:, :, 0] = 1
            ins["mask_index"] = m
        if P:
            ins["past"] = r(2, B, N, P, hs[0] // N).astype(f32)
        if abias:
            ins["attention_bias"] = r(B, 1, S, T).astype(f32)
        a = dict(attrs, num_heads=N)
        if qkv_attr:
            a["qkv_hidden_sizes"] = list(hs)
        cases.append((name, "Attention", ins, a, n_out, fused))

    msa("test_ms_attention")
    msa("test_ms_attention_no_bias", bias=False)
    msa("test_ms_attention_qkv_hidden_sizes", hs=(16, 16, 8), qkv_attr=True)
    msa("test_ms_attention_scale", scale=0.25)
    msa("test_ms_attention_mask_2d", mask="2d")
    msa("test_ms_attention_mask_lengths", mask="len")
    msa("test_ms_attention_mask_3d", mask="3d")
    msa("test_ms_attention_attention_bias", abias=True)
    msa("test_ms_attention_unidirectional", unidirectional=1, mask="2d")
    msa("test_ms_attention_past", P=3, n_out=2, unidirectional=1)
    return cases


CONST_INPUTS = {"bias", "weights"}   # contrib projection parameters are initializers


def tensor_type(a):
    return {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.bool_): TensorProto.BOOL,
            np.dtype(np.int32): TensorProto.INT32}[a.dtype]


# ONNX Runtime 1.30's CPU kernel of com.microsoft.Attention crashes (SIGSEGV) without the optional
# bias input; those cases are checked against the numpy reference only.
ORT_SKIP = {"test_ms_attention_no_bias": "ONNX Runtime 1.30 crashes on com.microsoft.Attention without bias"}


def write_case(root, sub, name, op, domain, slots, ins, attrs, outs_ref, out_slots, fused, rule):
    d = os.path.join(root, sub, name)
    os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
    node_inputs = [n if n in ins else "" for n in slots]
    while node_inputs and not node_inputs[-1]:
        node_inputs.pop()
    node = helper.make_node(op, node_inputs, out_slots, domain=domain or None, **attrs)
    graph_inputs, inits, feeds = [], [], []
    for n in slots:
        if n not in ins:
            continue
        if domain and n in CONST_INPUTS:
            inits.append(numpy_helper.from_array(ins[n], n))
        else:
            graph_inputs.append(helper.make_tensor_value_info(n, tensor_type(ins[n]), list(ins[n].shape)))
            feeds.append(n)
    outputs = [o for o in out_slots if o]
    graph_outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
    graph = helper.make_graph([node], name, graph_inputs, graph_outputs, initializer=inits)
    opsets = [helper.make_opsetid("", 23)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets, producer_name="vtopt gen_attention.py")
    model.ir_version = 9   # ONNX 1.12's helper defaults to 8; opset 23 wants IR >= 9 in ORT
    onnx.save(model, os.path.join(d, "model.onnx"))
    for i, n in enumerate(feeds):
        with open(os.path.join(d, "test_data_set_0", "input_%d.pb" % i), "wb") as f:
            f.write(numpy_helper.from_array(ins[n], n).SerializeToString())
        np.save(os.path.join(d, "in.%s.npy" % n), ins[n])
    k = 0
    for o, ref in zip(out_slots, outs_ref):
        if not o:
            continue
        with open(os.path.join(d, "test_data_set_0", "output_%d.pb" % k), "wb") as f:
            f.write(numpy_helper.from_array(ref, o).SerializeToString())
        k += 1
    return {"name": name, "dir": os.path.join(sub, name), "op": (domain + "." if domain else "") + op,
            "inputs": feeds, "outputs": outputs, "fused": fused, "rule": rule, "ort_skip": ORT_SKIP.get(name, "")}


def generate(root):
    manifest = []
    onnx_slots = ["Q", "K", "V", "attn_mask", "past_key", "past_value"]
    for name, ins, attrs, n_out, fused in onnx_cases_seeded():
        all_outs = ["Y", "present_key", "present_value", "qk_matmul_output"][:n_out]
        if n_out == 4 and "past_key" not in ins:
            all_outs = ["Y", "", "", "qk_matmul_output"]
        refs = onnx_attention_ref(ins, attrs, n_out)
        manifest.append(write_case(root, "node", name, "Attention", "", onnx_slots, ins, attrs, refs, all_outs, fused,
                                   "onnx-attention"))
    for name, op, ins, attrs, n_out, fused in contrib_cases_seeded():
        if op == "MultiHeadAttention":
            slots = ["query", "key", "value", "bias", "key_padding_mask", "attention_bias", "past_key", "past_value"]
            outs = ["output", "present_key", "present_value"][:n_out]
            refs, rule = mha_ref(ins, attrs, n_out), "ms-multihead-attention"
        else:
            slots = ["input", "weights", "bias", "mask_index", "past", "attention_bias"]
            outs = ["output", "present"][:n_out]
            refs, rule = msa_ref(ins, attrs, n_out), "ms-attention"
        manifest.append(write_case(root, "contrib", name, op, "com.microsoft", slots, ins, attrs, refs, outs, fused, rule))
    manifest.append(vit_case(root))
    with open(os.path.join(root, "cases.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def vit_case(root):
    """Two pre-norm transformer blocks (LayerNorm, q/k/v MatMul+Add, 3-D ONNX Attention, output
    projection, residual, GELU MLP, residual) on [B,5,16] tokens, 2 heads; reference in numpy."""
    np.random.seed(2303)
    B, N, C, H, Hid = 2, 5, 16, 2, 32
    x = np.random.rand(B, N, C).astype(np.float32)
    nodes, inits = [], []
    w = {}

    def param(name, *shape, scale=0.3):
        a = ((np.random.rand(*shape) - 0.5) * 2 * scale).astype(np.float32)
        inits.append(numpy_helper.from_array(a, name))
        w[name] = a
        return name

    def ln_ref(t, g, b):
        m = t.mean(-1, keepdims=True)
        v = ((t - m) ** 2).mean(-1, keepdims=True)
        return (t - m) / np.sqrt(v + 1e-5) * g + b

    cur, ref = "x", x.astype(np.float64)
    for l in range(2):
        p = "blocks.%d." % l
        g1, b1 = param(p + "ln1.g", C), param(p + "ln1.b", C)
        nodes.append(helper.make_node("LayerNormalization", [cur, g1, b1], [p + "ln1"], name=p + "ln1", axis=-1, epsilon=1e-5))
        proj = {}
        for t in "qkv":
            wt, bt = param(p + t + ".w", C, C), param(p + t + ".b", C)
            nodes.append(helper.make_node("MatMul", [p + "ln1", wt], [p + t + ".mm"], name=p + t + ".mm"))
            nodes.append(helper.make_node("Add", [p + t + ".mm", bt], [p + t], name=p + t + ".add"))
            proj[t] = p + t
        nodes.append(helper.make_node("Attention", [proj["q"], proj["k"], proj["v"]], [p + "att"], name=p + "attn",
                                      q_num_heads=H, kv_num_heads=H))
        wo, bo = param(p + "o.w", C, C), param(p + "o.b", C)
        nodes.append(helper.make_node("MatMul", [p + "att", wo], [p + "o.mm"], name=p + "o.mm"))
        nodes.append(helper.make_node("Add", [p + "o.mm", bo], [p + "o"], name=p + "o.add"))
        nodes.append(helper.make_node("Add", [cur, p + "o"], [p + "res1"], name=p + "res1"))
        g2, b2 = param(p + "ln2.g", C), param(p + "ln2.b", C)
        nodes.append(helper.make_node("LayerNormalization", [p + "res1", g2, b2], [p + "ln2"], name=p + "ln2", axis=-1, epsilon=1e-5))
        w1, c1, w2, c2 = param(p + "fc1.w", C, Hid), param(p + "fc1.b", Hid), param(p + "fc2.w", Hid, C), param(p + "fc2.b", C)
        nodes.append(helper.make_node("MatMul", [p + "ln2", w1], [p + "fc1.mm"], name=p + "fc1.mm"))
        nodes.append(helper.make_node("Add", [p + "fc1.mm", c1], [p + "fc1"], name=p + "fc1.add"))
        nodes.append(helper.make_node("Relu", [p + "fc1"], [p + "act"], name=p + "act"))
        nodes.append(helper.make_node("MatMul", [p + "act", w2], [p + "fc2.mm"], name=p + "fc2.mm"))
        nodes.append(helper.make_node("Add", [p + "fc2.mm", c2], [p + "fc2"], name=p + "fc2.add"))
        nodes.append(helper.make_node("Add", [p + "res1", p + "fc2"], [p + "out"], name=p + "res2"))
        # numpy
        h = ln_ref(ref, w[g1], w[b1])
        q, k, v = [h @ w[p + t + ".w"] + w[p + t + ".b"] for t in "qkv"]
        y, _ = core(heads(q, H), heads(k, H), heads(v, H), 1.0 / np.sqrt(C // H))
        r1 = ref + unheads(y) @ w[wo] + w[bo]
        h2 = ln_ref(r1, w[g2], w[b2])
        ref = r1 + np.maximum(h2 @ w[w1] + w[c1], 0) @ w[w2] + w[c2]
        cur = p + "out"
    nodes.append(helper.make_node("Identity", [cur], ["tokens"], name="out"))
    graph = helper.make_graph(nodes, "vit_onnx_attention", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [B, N, C])],
                              [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)], producer_name="vtopt gen_attention.py")
    model.ir_version = 9
    name = "test_vit_onnx_attention"
    d = os.path.join(root, "model", name)
    os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
    onnx.save(model, os.path.join(d, "model.onnx"))
    with open(os.path.join(d, "test_data_set_0", "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x, "x").SerializeToString())
    with open(os.path.join(d, "test_data_set_0", "output_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(ref.astype(np.float32), "tokens").SerializeToString())
    np.save(os.path.join(d, "in.x.npy"), x)
    return {"name": name, "dir": os.path.join("model", name), "op": "Attention", "inputs": ["x"], "outputs": ["tokens"],
            "fused": True, "rule": "onnx-attention", "count": 2, "blocks": 2, "ort_skip": ""}


def onnx_cases_seeded():
    np.random.seed(2301)
    return onnx_cases()


def contrib_cases_seeded():
    np.random.seed(2302)
    return contrib_cases()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    m = generate(a.out)
    print("gen_attention: %d cases in %s (%d expected to fuse)" % (len(m), a.out, sum(c["fused"] for c in m)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
