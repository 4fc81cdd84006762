"""Shared helpers for the vtopt model zoo: deterministic weights, ONNX export, reference
inputs/outputs as .npy next to the .onnx, and the manifest entry for each model.

Layout of one exported model NAME in the output folder:
  NAME.onnx                 the model (weights inside, one file)
  NAME.in.<input>.npy       the fixed inputs the references were computed on
  NAME.ref.<output>.npy     torch's outputs on those inputs
  zoo.json                  manifest: for each model its inputs/outputs (name, dtype, shape),
                            opset, parameter count, file size, family, size class
"""
import json
import os
import time

import numpy as np
import torch

# The exporter's precision: references are computed in float32 like the exported graph.
torch.set_default_dtype(torch.float32)


def seed_all(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)


def perturb_norms(model, seed):
    """LayerNorm/RMSNorm weights 1 and biases 0 would hide scale/shift bugs in a runtime;
    give them deterministic non-trivial values (all parameters called 'weight'/'bias' of
    modules whose class name contains 'Norm')."""
    g = torch.Generator().manual_seed(seed + 7919)
    with torch.no_grad():
        for m in model.modules():
            if 'Norm' not in type(m).__name__:
                continue
            w = getattr(m, 'weight', None)
            if isinstance(w, torch.nn.Parameter):
                w.copy_(1.0 + 0.1 * torch.randn(w.shape, generator=g))
            b = getattr(m, 'bias', None)
            if isinstance(b, torch.nn.Parameter):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))


def randn(shape, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * scale


def n_params(model):
    return int(sum(p.numel() for p in model.parameters()))


def _as_list(out):
    if isinstance(out, torch.Tensor):
        return [out]
    res = []
    for o in out:
        res.extend(_as_list(o))
    return res


def _npy_dtype(t):
    return str(t.detach().cpu().numpy().dtype)


def export(outdir, name, model, export_inputs, ref_inputs, output_names, opset,
           dynamic_axes=None, family='', size='', extra=None, check=True, export_kwargs=None):
    """Exports `model` traced on `export_inputs` (an ordered dict name -> tensor) and saves
    the references computed on `ref_inputs` (same names; shapes may differ along dynamic
    axes, which tests that the export really is dynamic). export_kwargs go to torch.onnx.export.
    Returns the manifest entry."""
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, name + '.onnx')
    model.eval()
    t0 = time.time()
    names = list(export_inputs.keys())
    # Not under no_grad: nn.MultiheadAttention would take its fused fast path
    # (aten::_native_multi_head_attention), which the ONNX exporter cannot express.
    torch.onnx.export(model, tuple(export_inputs[n] for n in names), path,
                      input_names=names, output_names=list(output_names),
                      dynamic_axes=dynamic_axes or {}, opset_version=opset,
                      do_constant_folding=True, **(export_kwargs or {}))
    t_export = time.time() - t0
    if check:
        import onnx
        onnx.checker.check_model(path)
    with torch.no_grad():
        outs = _as_list(model(*[ref_inputs[n] for n in names]))
    if len(outs) != len(output_names):
        raise RuntimeError(f'{name}: model returned {len(outs)} outputs, expected {len(output_names)}')
    ins_meta, outs_meta = [], []
    for n in names:
        a = ref_inputs[n].detach().cpu().numpy()
        np.save(os.path.join(outdir, f'{name}.in.{n}.npy'), a)
        ins_meta.append({'name': n, 'dtype': str(a.dtype), 'shape': list(a.shape)})
    for n, t in zip(output_names, outs):
        a = t.detach().cpu().numpy()
        if not np.all(np.isfinite(a)) and a.dtype.kind == 'f':
            raise RuntimeError(f'{name}: reference output {n} is not finite')
        np.save(os.path.join(outdir, f'{name}.ref.{n}.npy'), a)
        outs_meta.append({'name': n, 'dtype': str(a.dtype), 'shape': list(a.shape)})
    entry = {'name': name, 'family': family, 'size': size, 'opset': opset,
             'params': n_params(model), 'bytes': os.path.getsize(path),
             'inputs': ins_meta, 'outputs': outs_meta,
             'dynamic_axes': dynamic_axes or {}, 'export_s': round(t_export, 2)}
    if extra:
        entry.update(extra)
    return entry


def write_manifest(outdir, entries):
    path = os.path.join(outdir, 'zoo.json')
    old = {}
    if os.path.exists(path):
        try:
            with open(path) as f:
                old = {e['name']: e for e in json.load(f)['models']}
        except (ValueError, KeyError):
            old = {}
    for e in entries:
        old[e['name']] = e
    with open(path + '.tmp', 'w') as f:
        json.dump({'models': [old[k] for k in sorted(old)]}, f, indent=1)
    os.replace(path + '.tmp', path)
