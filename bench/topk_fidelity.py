#!/usr/bin/python3
"""topk_fidelity.py — sampling fidelity of the topk pass (Shiva-DiT routing) on the trained
class-conditional DiT (testsuite/models/trained/glyphdit.onnx, scripts/train_dit.py), judged by
the trained classifier glyphvit96.

Every strategy samples the same images (same classes, same seed, so the same initial noise) with
`vtopt sample` (DDIM, STEPS steps, CFG); the topk strategies select with the max of the
cond/uncond scores (cfg=1) and take k per (step, block) from the retention table at run time.
Routers: `vtopt calibrate` on the states of a separate dense sampling run (another seed). Metrics
per strategy: wall time per image (the sampler's, JIT), mean tokens per block (the pass's
--stats), cosine and PSNR of the final samples to the dense ones, class accuracy of the samples
by glyphvit96 (samples upsampled 32 -> 96 px bilinearly, ImageNet-normalised), and the Frechet
distance between glyphvit96's logits (its 10-d output: the only tensor the ONNX model exposes) on
the samples and on real held-out glyph images (train_vit.py's "indist" split, rendered once).
vtopt does all model runs; numpy only converts images and computes the metrics.

usage: /usr/bin/python3 bench/topk_fidelity.py [--build build] [--per-class 10] [--steps 25]
         [--cfg 3] [--threads 2] [--real 1000]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode:
        raise SystemExit(f'topk_fidelity: {" ".join(cmd)} failed ({r.returncode}):\n{r.stdout}')
    return r.stdout


def to_u8(samples):
    """[n,3,32,32] in [-1,1] -> uint8 [n,32,32,3]"""
    x = np.clip((samples + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
    return x.transpose(0, 2, 3, 1)


def upsample_norm(x_u8, side):
    from PIL import Image
    out = np.empty((len(x_u8), side, side, 3), np.float32)
    for i, im in enumerate(x_u8):
        out[i] = np.asarray(Image.fromarray(im).resize((side, side), Image.BILINEAR), np.float32)
    return np.ascontiguousarray(((out / 255.0 - MEAN) / STD).transpose(0, 3, 1, 2))


def classify(vt, judge, x, work, tag, threads):
    path = os.path.join(work, f'{tag}.pix.npy')
    np.save(path, x)
    od = os.path.join(work, f'{tag}.logits')
    run([vt, judge, '--run', '--jit', '--threads', str(threads), '-q', '--input', f'pixel_values={path}',
         '--output-dir', od])
    return np.load(os.path.join(od, 'logits.npy'))


def frechet(a, b):
    ma, mb = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(ca)
    sa = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = sa @ cb @ sa
    w2 = np.linalg.eigvalsh((m + m.T) / 2)
    return float(((ma - mb) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * np.sqrt(np.clip(w2, 0, None)).sum())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--build', default=os.path.join(ROOT, 'build'))
    ap.add_argument('--model', default=os.path.join(ROOT, 'testsuite', 'models', 'trained', 'glyphdit.onnx'))
    ap.add_argument('--judge', default=os.path.join(ROOT, 'testsuite', 'models', 'trained', 'glyphvit96.onnx'))
    ap.add_argument('--per-class', type=int, default=10)
    ap.add_argument('--steps', type=int, default=25)
    ap.add_argument('--cfg', type=float, default=3.0)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--real', type=int, default=1000, help='real held-out images for the Frechet distance')
    ap.add_argument('--strategies', default='dense,router0.8,random0.8,oracle0.8,router0.6,random0.6,oracle0.6,tomesd0.5')
    a = ap.parse_args()
    vt = os.path.join(a.build, 'vtopt')
    work = os.path.join(a.build, 'topk_fidelity')
    os.makedirs(work, exist_ok=True)
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), '?')
    isa = 'avx512f' if 'avx512f' in open('/proc/cpuinfo').read() else 'avx2'
    print(f'CPU: {cpu}; ISA: {isa}; threads {a.threads}; load {open("/proc/loadavg").read().split()[0]}')
    held = os.path.join(a.build, 'heldout')
    if not os.path.exists(os.path.join(held, 'glyphvit96.indist.u8.npy')):
        run(['/usr/bin/python3', os.path.join(ROOT, 'scripts', 'train_vit.py'), '--render-only', '--heldout-dir', held,
             '--name', 'glyphvit96', '--img', '96'])
    classes = ','.join(str(c) for c in range(10) for _ in range(a.per_class))
    labels = np.array([c for c in range(10) for _ in range(a.per_class)])
    common = ['--steps', str(a.steps), '--cfg', str(a.cfg), '--null', '10', '--threads', str(a.threads), '--jit']
    # calibration states: a separate dense run (seed 100, 2 images per class)
    cal = os.path.join(work, 'states')
    run([vt, 'sample', a.model, '--classes', ','.join(str(c) for c in range(10) for _ in range(2)), '--seed', '100',
         '--save-states', cal, '-o', os.path.join(work, 'cal_samples')] + common)
    specs = {'dense': 'none', 'tomesd0.5': 'tome:mode=sd,ratio=0.5'}   # ToMe-SD: merges half the attention tokens
    for R in ('0.8', '0.6'):
        rp = os.path.join(work, f'routers{R}.npz')
        txt = run([vt, 'calibrate', a.model, f'--pass=topk:R={R},steps={a.steps}', '--data', cal, '-o', rp,
                   '--threads', str(a.threads)])
        print(txt.strip())
        specs[f'router{R}'] = f'topk:routers={rp},cfg=1'
        specs[f'random{R}'] = f'topk:policy=random,R={R},steps={a.steps},cfg=1'
        specs[f'oracle{R}'] = f'topk:policy=oracle,R={R},steps={a.steps},cfg=1'
    real_u8 = np.load(os.path.join(held, 'glyphvit96.indist.u8.npy'))[:a.real]
    real_logits = classify(vt, a.judge, upsample_norm(real_u8, 96) if real_u8.shape[1] != 96 else
                           np.ascontiguousarray(((real_u8.astype(np.float32) / 255.0 - MEAN) / STD).transpose(0, 3, 1, 2)),
                           work, 'real', a.threads)
    real_acc = float((real_logits.argmax(-1) == np.load(os.path.join(held, 'glyphvit96.indist.labels.npy'))[:a.real]).mean())
    rows = []
    dense = None
    for name in a.strategies.split(','):
        od = os.path.join(work, name)
        t0 = time.time()
        txt = run([vt, 'sample', a.model, '--classes', classes, '--seed', '0', '-o', od, f'--pass={specs[name]}'] + common)
        ms = float(re.search(r'([0-9.]+) ms per image', txt).group(1))
        tok = run([vt, a.model, f'--pass={specs[name]}', '--dim', f'batch={2 * len(labels)}', '--stats', '-q'])
        ks = [float(m) for m in re.findall(r'block \d+ tokens \d+ -> ([0-9.]+)', tok)]
        s = np.load(os.path.join(od, 'samples.npy'))
        if dense is None:
            dense = s
        cos = float((s * dense).sum() / (np.linalg.norm(s) * np.linalg.norm(dense) + 1e-30))
        mse = float(((s - dense) ** 2).mean())
        psnr = float('inf') if mse == 0 else 10 * np.log10(4.0 / mse)   # range [-1, 1]: peak 2
        lg = classify(vt, a.judge, upsample_norm(to_u8(s), 96), work, name, a.threads)
        acc = float((lg.argmax(-1) == labels).mean())
        fd = frechet(lg, real_logits)
        rows.append((name, ms, sum(ks) / len(ks) if ks else float('nan'), cos, psnr, acc, fd))
    print(f'\nglyphdit: {len(labels)} samples ({a.per_class} per class), {a.steps} DDIM steps, CFG {a.cfg}; '
          f'glyphvit96 on {a.real} real held-out images: accuracy {real_acc:.3f}\n')
    print('| strategy | ms/image (JIT) | tokens/block (mean) | cosine to dense | PSNR to dense (dB) | class accuracy | '
          'Frechet distance (glyphvit96 logits) | FD / dense |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|')
    for r in rows:
        print(f'| {r[0]} | {r[1]:.1f} | {"all" if r[2] != r[2] else f"{r[2]:.1f}"} | {r[3]:.4f} | {r[4]:.1f} | {r[5]:.3f} | {r[6]:.2f} | {r[6] / rows[0][6]:.2f} |')
    json.dump({'rows': rows, 'real_accuracy': real_acc}, open(os.path.join(work, 'results.json'), 'w'), indent=1)


if __name__ == '__main__':
    sys.exit(main())
