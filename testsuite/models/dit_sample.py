#!/usr/bin/python3
"""N-step DDIM sampler (eta = 0) for the zoo's DiT: the loop runs in numpy and calls the
exported noise predictor once per step through a backend:

  ort     ONNX Runtime (node bench/ort_run.mjs), one process per step
  vtopt   the vtopt CLI (`vtopt MODEL --run`), one process per step
  torch   the torch module rebuilt from zoo_dit with the same seed (a reference for the loop)

usage: /usr/bin/python3 testsuite/models/dit_sample.py MODEL.onnx [--backend ort|vtopt|torch]
         [--steps 10] [--class 3] [--batch 1] [--cfg 0] [--seed 0] [--out DIR]
         [--vtopt build/vtopt] [--threads 2] [--save-steps]
With --cfg S > 0 each step runs the model on [x, x] with labels [class, null] and guides
eps = eps_u + S (eps_c - eps_u) (classifier-free guidance). Writes DIR/sample.npy (the final
latents) and, with --save-steps, DIR/step_XXX.npy (x_t at each step), and prints per-step
timing. --clip-x0 (default 4) clips the predicted x0, which keeps the loop bounded on
random weights. The linear beta schedule (1e-4 .. 0.02 over 1000 steps) is DiT's.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def schedule(steps, train_steps=1000):
    betas = np.linspace(1e-4, 0.02, train_steps, dtype=np.float64)
    abar = np.cumprod(1.0 - betas)
    ts = np.linspace(train_steps - 1, 0, steps).round().astype(np.int64)
    return ts, abar


class CliBackend:
    def __init__(self, model, kind, vtopt, threads, workdir):
        self.model, self.kind, self.vtopt, self.threads, self.dir = model, kind, vtopt, threads, workdir

    def __call__(self, x, t, y):
        ins = {'x': x.astype(np.float32), 't': t.astype(np.float32), 'y': y.astype(np.int64)}
        args = []
        for k, v in ins.items():
            p = os.path.join(self.dir, f'in_{k}.npy')
            np.save(p, v)
            args += ['--input', f'{k}={p}']
        outdir = os.path.join(self.dir, 'out')
        if self.kind == 'ort':
            cmd = ['node', os.path.join(ROOT, 'bench', 'ort_run.mjs'), self.model, '--runs', '1',
                   '--warmup', '0', '--threads', str(self.threads), '--quiet', '--output-dir', outdir] + args
        else:
            cmd = [self.vtopt, self.model, '--run', '-q', '--threads', str(self.threads),
                   '--output-dir', outdir] + args
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise SystemExit(f'dit_sample: {" ".join(cmd)} failed:\n{r.stderr}{r.stdout}')
        return np.load(os.path.join(outdir, 'out.npy'))


class TorchBackend:
    def __init__(self, model_path, seed):
        import torch
        sys.path.insert(0, HERE)
        import zoo_dit
        name = os.path.splitext(os.path.basename(model_path))[0]
        if name not in zoo_dit.CONFIGS:
            raise SystemExit(f'dit_sample: --backend torch needs a zoo DiT name, not {name}')
        self.m = zoo_dit.make_model(name, seed).eval()
        self.torch = torch

    def __call__(self, x, t, y):
        with self.torch.no_grad():
            return self.m(self.torch.from_numpy(x.astype(np.float32)), self.torch.from_numpy(t.astype(np.float32)),
                          self.torch.from_numpy(y.astype(np.int64))).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('model')
    ap.add_argument('--backend', default='ort', choices=['ort', 'vtopt', 'torch'])
    ap.add_argument('--steps', type=int, default=10)
    ap.add_argument('--class', dest='cls', type=int, default=3)
    ap.add_argument('--batch', type=int, default=1)
    ap.add_argument('--cfg', type=float, default=0.0)
    ap.add_argument('--seed', type=int, default=0, help='noise seed (and zoo seed for --backend torch)')
    ap.add_argument('--out', default=None)
    ap.add_argument('--vtopt', default=os.path.join(ROOT, 'build', 'vtopt'))
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--save-steps', action='store_true')
    ap.add_argument('--clip-x0', type=float, default=4.0,
                    help='clip the predicted x0 to [-V, V] (keeps random-weight models bounded; 0: off)')
    a = ap.parse_args()
    stem = os.path.splitext(a.model)[0]
    meta = {}
    man = os.path.join(os.path.dirname(a.model) or '.', 'zoo.json')
    if os.path.exists(man):
        with open(man) as f:
            meta = {e['name']: e for e in json.load(f)['models']}.get(os.path.basename(stem), {})
    x_shape = None
    for i in meta.get('inputs', []):
        if i['name'] == 'x':
            x_shape = i['shape'][1:]
    if x_shape is None:
        x_shape = list(np.load(stem + '.in.x.npy').shape[1:])
    null_class = meta.get('classes', 1000)
    out = a.out or tempfile.mkdtemp(prefix='dit_sample_')
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix='dit_step_')
    fn = TorchBackend(a.model, a.seed) if a.backend == 'torch' else CliBackend(a.model, a.backend, a.vtopt, a.threads, work)

    rng = np.random.default_rng(a.seed)
    x = rng.standard_normal([a.batch] + x_shape).astype(np.float32)
    C = x_shape[0]
    ts, abar = schedule(a.steps)
    times = []
    for i, t in enumerate(ts):
        if a.cfg > 0:
            xin = np.concatenate([x, x])
            yin = np.array([a.cls] * a.batch + [null_class] * a.batch, np.int64)
        else:
            xin, yin = x, np.array([a.cls] * a.batch, np.int64)
        t0 = time.time()
        o = fn(xin, np.full(len(xin), float(t), np.float32), yin)
        times.append(time.time() - t0)
        eps = o[:, :C].astype(np.float64)
        if a.cfg > 0:
            eps = eps[a.batch:] + a.cfg * (eps[:a.batch] - eps[a.batch:])
        a_t = abar[t]
        a_prev = abar[ts[i + 1]] if i + 1 < len(ts) else 1.0
        x0 = (x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t)
        if a.clip_x0 > 0:
            x0 = np.clip(x0, -a.clip_x0, a.clip_x0)
            eps = (x - np.sqrt(a_t) * x0) / np.sqrt(1 - a_t)
        x = (np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev) * eps).astype(np.float32)
        if a.save_steps:
            np.save(os.path.join(out, f'step_{i:03d}.npy'), x)
    np.save(os.path.join(out, 'sample.npy'), x)
    print(f'dit_sample: {a.steps} steps with {a.backend}: {sum(times):.2f} s '
          f'(median step {np.median(times) * 1e3:.1f} ms incl. process start); '
          f'sample {list(x.shape)} mean {x.mean():.4f} std {x.std():.4f} -> {out}/sample.npy')
    return 0


if __name__ == '__main__':
    sys.exit(main())
