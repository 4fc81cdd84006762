#!/usr/bin/python3
"""Trains vtopt's small class-conditional DiT with real weights ("glyphdit") and exports it to ONNX.

Data: the glyph task of scripts/train_vit.py (a digit 0-9 in an installed font over a crop of a
real photo or video frame), rendered at --img px (default 32), RGB scaled to [-1, 1]. The model
is the zoo's DiT (testsuite/models/zoo_dit.py: adaLN-Zero blocks, patchify conv, sin-cos
positions, timestep MLP, class table with a null class for classifier-free guidance) in pixel
space: 3 channels, patch 2 -> (img/2)^2 tokens (256 at 32 px). It predicts the noise (the first 3
of its 6 output channels; the other 3 are the zoo's "learned sigma" slot, trained to 0 here).
DDPM training: DiT's linear beta schedule (1e-4 .. 0.02 over 1000 steps), uniform t, MSE on the
noise, labels replaced by the null class (10) with probability --p-uncond (for CFG). AdamW,
linear warm-up, constant lr, EMA of the weights (exported). SIGINT stops training and exports.
Deterministic from --seed for a given thread count.

Outputs (--out, default testsuite/models/trained), NAME = --name:
  NAME.onnx   inputs x [B,3,S,S] float, t [B] float, y [B] int64; output out [B,6,S,S]
  NAME.json   configuration, loss curve, training time

usage: nice -n 19 /usr/bin/python3 scripts/train_dit.py [--minutes 40] [--threads 1] ...
"""
import argparse
import copy
import json
import os
import signal
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'testsuite', 'models'))
sys.path.insert(0, os.path.join(ROOT, 'scripts'))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=os.path.join(ROOT, 'testsuite', 'models', 'trained'))
    ap.add_argument('--name', default='glyphdit')
    ap.add_argument('--img', type=int, default=32)
    ap.add_argument('--dim', type=int, default=128)
    ap.add_argument('--depth', type=int, default=6)
    ap.add_argument('--heads', type=int, default=4)
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--lr', type=float, default=4e-4)
    ap.add_argument('--steps', type=int, default=100000, help='upper bound; --minutes usually ends training')
    ap.add_argument('--minutes', type=float, default=40.0, help='wall-clock training budget')
    ap.add_argument('--pool', type=int, default=16000)
    ap.add_argument('--p-uncond', type=float, default=0.1)
    ap.add_argument('--ema', type=float, default=0.999)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--log-every', type=int, default=100)
    a = ap.parse_args()

    import torch
    import torch.nn.functional as F
    import train_vit
    from zoo_dit import DiT
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t_start = time.time()
    train_vit.IMG = a.img
    train_fonts, _ = train_vit.fonts()
    bgs = train_vit.backgrounds(train_vit.TRAIN_PHOTOS, train_vit.TRAIN_VIDEOS)
    pool_u8, pool_y = train_vit.render(np.random.default_rng(a.seed), train_fonts, bgs, a.pool, {})
    pool = torch.from_numpy(pool_u8.astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()
    pool_y = torch.from_numpy(pool_y)
    t_render = time.time() - t_start
    print(f'train_dit: rendered {a.pool} images in {t_render:.0f} s', flush=True)

    model = DiT(size=a.img, patch=2, cin=3, dim=a.dim, depth=a.depth, heads=a.heads, classes=10)
    with torch.no_grad():  # adaLN-Zero: every block starts as the identity, the output as 0
        for m in model.modules():
            if isinstance(m, torch.nn.Sequential) and isinstance(m[0], torch.nn.SiLU):
                m[1].weight.zero_()
                m[1].bias.zero_()
        model.final_linear.weight.zero_()
        model.final_linear.bias.zero_()
        torch.nn.init.normal_(model.y_embedder.weight, std=0.02)
    ema = copy.deepcopy(model).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
    warm = 500
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0).float()
    g = torch.Generator().manual_seed(a.seed)
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    model.train()
    losses, done, run = [], 0, 0.0
    t_train = time.time()
    for step in range(a.steps):
        if stop or time.time() - t_train > a.minutes * 60:
            break
        idx = torch.randint(0, a.pool, (a.batch,), generator=g)
        x0 = pool[idx]
        y = pool_y[idx].clone()
        y[torch.rand(a.batch, generator=g) < a.p_uncond] = 10
        t = torch.randint(0, 1000, (a.batch,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        ab = abar[t][:, None, None, None]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        out = model(xt, t.float(), y)
        loss = F.mse_loss(out[:, :3], eps) + 0.1 * out[:, 3:].pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            d = min(a.ema, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(d).add_(pm, alpha=1 - d)
        done = step + 1
        run = 0.98 * run + 0.02 * loss.item() if step else loss.item()
        if done % a.log_every == 0:
            losses.append([done, round(run, 4)])
            print(f'train_dit: step {done} loss {run:.4f} ({time.time() - t_start:.0f} s)', flush=True)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, f'{a.name}.onnx')
    ex = (torch.zeros(1, 3, a.img, a.img), torch.tensor([500.0]), torch.tensor([3], dtype=torch.int64))
    torch.onnx.export(ema, ex, path, input_names=['x', 't', 'y'], output_names=['out'], opset_version=17,
                      dynamic_axes={'x': {0: 'batch'}, 't': {0: 'batch'}, 'y': {0: 'batch'}, 'out': {0: 'batch'}})
    info = {
        'task': 'class-conditional DDPM noise predictor for the glyph images of scripts/train_vit.py',
        'img': a.img, 'channels': 3, 'patch': 2, 'tokens': (a.img // 2) ** 2, 'dim': a.dim, 'depth': a.depth,
        'heads': a.heads, 'classes': 10, 'null_class': 10, 'params': sum(p.numel() for p in model.parameters()),
        'pixel_range': [-1, 1], 'eps_channels': [0, 3], 'schedule': 'linear beta 1e-4..0.02, 1000 steps',
        'steps_done': done, 'batch': a.batch, 'lr': a.lr, 'ema': a.ema, 'p_uncond': a.p_uncond, 'seed': a.seed,
        'threads': a.threads, 'pool': a.pool, 'loss_curve': losses, 'onnx_bytes': os.path.getsize(path),
        'seconds': round(time.time() - t_start, 1), 'render_seconds': round(t_render, 1), 'torch': torch.__version__,
    }
    with open(os.path.join(a.out, f'{a.name}.json'), 'w') as f:
        json.dump(info, f, indent=1)
    print(f'train_dit: {done} steps, loss {run:.4f}, {info["params"] / 1e6:.2f} M params, '
          f'{info["onnx_bytes"] / 2**20:.2f} MiB -> {path}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
