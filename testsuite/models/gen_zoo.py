#!/usr/bin/python3
"""Generates vtopt's model zoo: ONNX exports by torch plus fixed inputs and torch references.

usage: /usr/bin/python3 testsuite/models/gen_zoo.py [--set ci|tiny|full|all] [--only NAME,...]
                                                    [--out DIR] [--seed S] [--list] [--force]

Sets: tiny = the small model of every family (seconds); ci = tiny plus the full ViT-S/16 at
opsets 14 and 17 (the interpreter's acceptance models); full = benchmark sizes; all = both.
Output layout (default testsuite/models/out/): see zoo_common.py. A model whose files exist
and whose generator signature (seed, script version) matches is not regenerated unless --force.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# name -> (family module, size class). Kept free of torch imports so --list is instant
# (CMake calls it at configure time to create one test per model).
REGISTRY = {
    'vit_tiny_op17': ('zoo_vit', 'tiny'),
    'vit_tiny_op14': ('zoo_vit', 'tiny'),
    'vit_tiny_mha_op14': ('zoo_vit', 'tiny'),
    'vit_tiny_qkv_op16': ('zoo_vit', 'tiny'),
    'vggt_tiny': ('zoo_vggt', 'tiny'),
    'dit_tiny': ('zoo_dit', 'tiny'),
    'vitstream_tiny': ('zoo_vitstream', 'tiny'),
    'decoder_tiny': ('zoo_decoder', 'tiny'),
    'decoder_tiny_embed': ('zoo_decoder', 'tiny'),
    'decoder_tiny_projector': ('zoo_decoder', 'tiny'),
    'hybrid_tiny_op17': ('zoo_hybrid', 'tiny'),
    'hybrid_tiny_op13': ('zoo_hybrid', 'tiny'),
    'vit_s16_op17': ('zoo_vit', 'full'),
    'vit_s16_op14': ('zoo_vit', 'full'),
    'vit_s16_mha_op14': ('zoo_vit', 'full'),
    'vit_s16_qkv_op17': ('zoo_vit', 'full'),
    'vit_b16_op17': ('zoo_vit', 'full'),
    'vggt_full': ('zoo_vggt', 'full'),
    'dit_s2': ('zoo_dit', 'full'),
    'vitstream_b16': ('zoo_vitstream', 'full'),
    'decoder_full': ('zoo_decoder', 'full'),
    'decoder_full_embed': ('zoo_decoder', 'full'),
    'decoder_full_projector': ('zoo_decoder', 'full'),
    'hybrid_full_op17': ('zoo_hybrid', 'full'),
}
CI_EXTRA = ['vit_s16_op14', 'vit_s16_op17']
# Bump when a generator changes so stale outputs are rebuilt.
VERSION = 3


def select(set_name):
    if set_name == 'tiny':
        return [n for n, (_, s) in REGISTRY.items() if s == 'tiny']
    if set_name == 'ci':
        return select('tiny') + CI_EXTRA
    if set_name == 'full':
        return [n for n, (_, s) in REGISTRY.items() if s == 'full']
    if set_name == 'all':
        return list(REGISTRY)
    raise SystemExit(f'gen_zoo: unknown set {set_name}')


def up_to_date(outdir, name, stamp):
    p = os.path.join(outdir, name + '.stamp')
    if not os.path.exists(p) or not os.path.exists(os.path.join(outdir, name + '.onnx')):
        return False
    with open(p) as f:
        return f.read().strip() == stamp


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--set', default='tiny')
    ap.add_argument('--only', default='', help='comma-separated model names (overrides --set)')
    ap.add_argument('--out', default=os.path.join(HERE, 'out'))
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--list', action='store_true', help='print the model names of the set and exit')
    ap.add_argument('--force', action='store_true')
    ap.add_argument('--threads', type=int, default=0, help='torch threads (0: torch default)')
    a = ap.parse_args()
    names = [n for n in a.only.split(',') if n] if a.only else select(a.set)
    for n in names:
        if n not in REGISTRY:
            raise SystemExit(f'gen_zoo: unknown model {n} (known: {", ".join(REGISTRY)})')
    if a.list:
        print('\n'.join(names))
        return 0
    import importlib
    import torch
    from zoo_common import write_manifest
    if a.threads:
        torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    entries = []
    t_all = time.time()
    for n in names:
        stamp = f'v{VERSION} seed{a.seed} torch{torch.__version__}'
        if not a.force and up_to_date(a.out, n, stamp):
            print(f'gen_zoo: {n}: up to date')
            continue
        t0 = time.time()
        mod = importlib.import_module(REGISTRY[n][0])
        e = mod.build(n, a.out, seed=a.seed)
        entries.append(e)
        with open(os.path.join(a.out, n + '.stamp'), 'w') as f:
            f.write(stamp + '\n')
        print(f'gen_zoo: {n}: {e["params"] / 1e6:.2f} M params, {e["bytes"] / 2**20:.1f} MiB, '
              f'opset {e["opset"]}, {time.time() - t0:.1f} s', flush=True)
    write_manifest(a.out, entries)
    print(f'gen_zoo: {len(names)} models in {a.out} ({time.time() - t_all:.1f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
