#!/usr/bin/python3
"""Runs one zoo model through a runtime and compares its outputs (the ctest driver).

usage: zoo_check.py MODE --zoo DIR --model NAME [--vtopt BIN] [--node NODE] [--max-rel-l2 X]
                    [--threads N] [--work DIR (outputs; default the zoo folder)]
modes:
  interp      vtopt MODEL --run --input ... --output-dir WORK/check-interp/NAME/interp, then
              `vtopt compare-outputs NAME.ref.OUT.npy .../interp/OUT.npy --max-rel-l2 X`
  ort         ONNX Runtime (bench/ort_run.mjs) against torch's references
  ort-interp  ONNX Runtime's outputs against the interpreter's (both run here)
  jit         the LLVM-compiled model (vtopt --run --jit) against the interpreter (both run here)
  so          the model compiled to a fast.so (dims pinned from the inputs), run through its ABI
              (vtopt run NAME.so), against the interpreter
jit and so also check how much ran in generated code: the compile runs with --stats, and its
"N of M nodes in generated kernels" and "host kernel OP 'node'" lines must match the model's
entry in compiled_expect.json (a minimum generated share, and the host kernels allowed, by op,
with a count each). A model without an entry fails: a compiled test that does not know what
should be generated would pass on a silent fallback to interpreter kernels.
Every run writes under WORK/check-MODE/NAME/ (WORK: --work, default the zoo folder), so the
tests of one model run side by side under ctest -j without sharing files.
Exit 0 when every output is within the threshold and the generated share is as expected, 1 when
not, 2 on a run failure.
Only the standard library is used (no torch/numpy), so it runs on any python3.
"""
import argparse
import glob
import json
import os
import re
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def io_names(zoo, name):
    man = os.path.join(zoo, 'zoo.json')
    if os.path.exists(man):
        with open(man) as f:
            for e in json.load(f)['models']:
                if e['name'] == name:
                    return [i['name'] for i in e['inputs']], [o['name'] for o in e['outputs']]
    pre = os.path.join(zoo, name)
    ins = sorted(p[len(pre) + 4:-4] for p in glob.glob(glob.escape(pre) + '.in.*.npy'))
    outs = sorted(p[len(pre) + 5:-4] for p in glob.glob(glob.escape(pre) + '.ref.*.npy'))
    return ins, outs


def run(cmd, capture=False):
    """Runs cmd (echoed); with capture, returns (rc, stdout+stderr) and echoes the output too."""
    print('+ ' + ' '.join(shlex.quote(c) for c in cmd), flush=True)
    if not capture:
        return subprocess.run(cmd).returncode
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sys.stdout.write(r.stdout)
    sys.stdout.flush()
    return r.returncode, r.stdout


def load_expect(model, mode):
    with open(os.path.join(HERE, 'compiled_expect.json')) as f:
        exp = json.load(f)['models'].get(model)
    return exp.get(mode, exp) if exp else None


def check_generated(model, out, exp):
    """The --stats of a compile against the model's entry in compiled_expect.json; returns the
    list of failures (empty: as expected)."""
    fails = []
    m = re.search(r'^codegen: \d+ kernels:.*?; (\d+) of (\d+) nodes in generated kernels', out, re.M)
    if not m:
        return ['no "N of M nodes in generated kernels" line in --stats (did the compile run?)']
    gen, total = int(m.group(1)), int(m.group(2))
    share = gen / total if total else 0.0
    host = {}
    for op in re.findall(r"^  \[\d+\] host kernel(?: via vt_run_node \(absent output\))? (\S+) '", out, re.M):
        host[op] = host.get(op, 0) + 1
    print(f'zoo_check: {model}: {gen} of {total} nodes in generated kernels ({share:.3f}, expected >= '
          f'{exp["min_generated_share"]}); host kernels: {host or "none"} (allowed: {exp["host"] or "none"})')
    if share < exp['min_generated_share']:
        fails.append(f'{gen} of {total} nodes in generated kernels ({share:.3f}) < {exp["min_generated_share"]}')
    for op, n in sorted(host.items()):
        if n > exp['host'].get(op, 0):
            fails.append(f'{n} host kernel(s) {op}, {exp["host"].get(op, 0)} allowed')
    return fails


def safe(name):
    return name.replace('/', '_').replace(':', '_')


def run_interp(a, ins, outdir, extra=(), capture=False):
    os.makedirs(outdir, exist_ok=True)
    cmd = [a.vtopt, os.path.join(a.zoo, a.model + '.onnx'), '--run', *extra, '--output-dir', outdir]
    if a.threads:
        cmd += ['--threads', str(a.threads)]
    for n in ins:
        cmd += ['--input', f'{n}={os.path.join(a.zoo, f"{a.model}.in.{n}.npy")}']
    return run(cmd, capture)


def run_ort(a, outdir, compare_ref):
    cmd = [a.node, os.path.join(ROOT, 'bench', 'ort_run.mjs'), os.path.join(a.zoo, a.model + '.onnx'),
           '--runs', '1', '--warmup', '0', '--threads', str(a.threads or 2), '--output-dir', outdir,
           '--max-rel-l2', str(a.max_rel_l2)]
    if compare_ref:
        cmd.append('--compare-ref')
    return run(cmd)


def compare(a, ref, got):
    return run([a.vtopt, 'compare-outputs', ref, got, '--max-rel-l2', str(a.max_rel_l2)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('mode', choices=['interp', 'ort', 'ort-interp', 'jit', 'so'])
    ap.add_argument('--zoo', required=True)
    ap.add_argument('--model', required=True)
    ap.add_argument('--vtopt', default=os.path.join(ROOT, 'build', 'vtopt'))
    ap.add_argument('--node', default='node')
    ap.add_argument('--max-rel-l2', type=float, default=1e-4)
    ap.add_argument('--threads', type=int, default=0)
    ap.add_argument('--work', default=None, help='where outputs go (default: the zoo folder)')
    a = ap.parse_args()
    if not os.path.exists(os.path.join(a.zoo, a.model + '.onnx')):
        print(f'zoo_check: {a.zoo}/{a.model}.onnx does not exist (generate the zoo first)', file=sys.stderr)
        return 2
    ins, outs = io_names(a.zoo, a.model)
    if not outs:
        print(f'zoo_check: no references for {a.model}', file=sys.stderr)
        return 2
    exp = None
    if a.mode in ('jit', 'so'):
        exp = load_expect(a.model, a.mode)
        if exp is None:
            print(f'zoo_check: {a.model} has no entry in {HERE}/compiled_expect.json (generated share and host '
                  'kernels expected when compiled): add one', file=sys.stderr)
            return 2
    work = os.path.join(a.work or a.zoo, 'check-' + a.mode, a.model)   # one directory per test
    interp_dir = os.path.join(work, 'interp')
    ort_dir = os.path.join(work, 'ort')
    worst = 0
    stats_out = None
    if a.mode == 'ort':
        rc = run_ort(a, ort_dir, True)
        return rc if rc in (0, 1) else 2
    rc = run_interp(a, ins, interp_dir)
    if rc != 0:
        print(f'zoo_check: vtopt failed on {a.model} (exit {rc})', file=sys.stderr)
        return 2
    got_dir = interp_dir
    if a.mode == 'interp':
        refs = [(os.path.join(a.zoo, f'{a.model}.ref.{o}.npy'), o) for o in outs]
    elif a.mode == 'jit':
        got_dir = os.path.join(work, 'jit')
        rc, stats_out = run_interp(a, ins, got_dir, ['--jit', '--stats'], capture=True)
        if rc != 0:
            print(f'zoo_check: vtopt --jit failed on {a.model} (exit {rc})', file=sys.stderr)
            return 2
        refs = [(os.path.join(interp_dir, f'{safe(o)}.npy'), o) for o in outs]
    elif a.mode == 'so':
        got_dir = os.path.join(work, 'so')
        os.makedirs(got_dir, exist_ok=True)
        lib = os.path.join(work, a.model + '.so')
        feeds = []
        for n in ins:
            feeds += ['--input', f'{n}={os.path.join(a.zoo, f"{a.model}.in.{n}.npy")}']
        threads = ['--threads', str(a.threads)] if a.threads else []
        rc, stats_out = run([a.vtopt, os.path.join(a.zoo, a.model + '.onnx'), '-q', '--stats', *feeds, '-o', lib,
                             '--tag', 'zoo'], capture=True)
        if rc == 0:
            rc = run([a.vtopt, 'run', lib, '--tag', 'zoo', '-q', *threads, *feeds, '--output-dir', got_dir])
        if rc != 0:
            print(f'zoo_check: fast.so failed on {a.model} (exit {rc})', file=sys.stderr)
            return 2
        refs = [(os.path.join(interp_dir, f'{safe(o)}.npy'), o) for o in outs]
    else:
        rc = run_ort(a, ort_dir, False)
        if rc != 0:
            return 2
        refs = [(os.path.join(ort_dir, f'{safe(o)}.npy'), o) for o in outs]
    for ref, o in refs:
        got = os.path.join(got_dir, f'{safe(o)}.npy')
        rc = compare(a, ref, got)
        if rc != 0:
            print(f'zoo_check: {a.model} output {o}: mismatch (exit {rc})', file=sys.stderr)
            worst = max(worst, 1 if rc == 1 else 2)
    if exp is not None:
        for f in check_generated(a.model, stats_out, exp):
            print(f'zoo_check: {a.model} {a.mode}: {f} (testsuite/models/compiled_expect.json)', file=sys.stderr)
            worst = max(worst, 1)
    return worst


if __name__ == '__main__':
    sys.exit(main())
