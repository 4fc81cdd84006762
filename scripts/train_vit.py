#!/usr/bin/python3
"""Trains vtopt's ViTs with real weights ("glyphvit", "glyphvit96") and exports them to ONNX.

Task: recognise the digit (10 classes) rendered in a font installed on the machine
(Debian's fonts-dejavu and the LyX TeX fonts), drawn at a random size, position, rotation and
colour over a random crop of a real photo (python3-skimage's data) or a real video frame
(python3-imageio's cockatoo.mp4 / realshort.mp4, decoded with ffmpeg), with blur and noise.
The glyph covers only part of the image, so most patch tokens are background (what token
merging exploits); glyph size, offsets and shifts scale with --img. The held-out test set uses fonts AND backgrounds never seen in training,
so its accuracy measures generalisation, not memorisation.

Everything is deterministic from --seed (data, initialisation, order) for a given thread
count. Training sees a fixed pool of rendered images (--pool) with random shifts. Recipe: AdamW
(weight decay 0.05), linear warm-up over the first 5% of --steps then cosine decay to 0, label
smoothing 0.1, gradient-norm clipping at 1. SIGINT stops training early and still exports.
Two held-out sets of --test-size images each: "ood" (fonts AND backgrounds never seen in
training) and "indist" (fresh renders, never trained on, with the training fonts/backgrounds).

The committed models (testsuite/models/trained/):
  glyphvit    defaults: img 48, patch 8 -> 36 tokens + CLS, dim 64, 4 blocks, 4 heads
  glyphvit96  --name glyphvit96 --img 96 --stem conv --dim 64 --depth 6 --heads 2 --batch 32
              --steps 3600 --pos sincos --pool 32000 --ref-split indist --ref-u8 (the exact command
              is in testsuite/models/trained/README.md): 144 tokens + CLS; a convolutional stem
              (three 3x3 stride-2 convs with BatchNorm+ReLU, then a 1x1 conv: total stride 8, the
              "early convolutions" ViT_C of Xiao et al. 2021) in place of the 8x8 patchify conv,
              which trains to good accuracy in far fewer samples on a CPU budget.
Both: opset 17, hand-written attention (zoo_vit 'manual'). Output files, NAME = --name:
  NAME.onnx                 the model (batch dynamic)
  NAME.in.pixel_values.npy  a fixed held-out batch (--ref-count images of --ref-split,
                            ImageNet-normalised float32) -- or, with --ref-u8, NAME.in.u8.npy:
                            the same images as uint8 [n,H,W,3] (4x smaller; tests normalise)
  NAME.ref.logits.npy       torch's logits on it
  NAME.labels.npy           the true labels of that batch
  NAME.json                 accuracy, configuration, fonts and backgrounds of each split
With --heldout-dir D, both full held-out sets are also written there (not committed: large):
  D/NAME.{ood,indist}.u8.npy (uint8 [n,H,W,3]) and D/NAME.{ood,indist}.labels.npy
  (bench/tome_fidelity.sh uses them). --render-only writes just those, without training.

usage: /usr/bin/python3 scripts/train_vit.py [--out DIR] [--name NAME] [--img PX] [--stem patch|conv]
       [--steps N] [--batch B] [--seed S] [--threads T] [--heldout-dir D] [--render-only] ...
"""
import argparse
import glob
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'testsuite', 'models'))

IMG = 48
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
SKIMAGE_DIR = '/usr/lib/python3/dist-packages/skimage/data'
IMAGEIO_DIR = '/usr/lib/python3/dist-packages/imageio/resources/images'

# Fonts whose glyphs for '0'-'9' are ordinary digits. Held-out fonts are never trained on.
TEST_FONTS = ['DejaVuSerifCondensed-Italic.ttf', 'DejaVuSansMono-BoldOblique.ttf',
              'DejaVuSans-ExtraLight.ttf', 'cmr10.ttf']
EXCLUDE_FONTS = ['eufm10', 'esint10', 'msam10', 'msbm10', 'cmsy10', 'cmex10', 'stmary10', 'rsfs10',
                 'wasy10', 'DejaVuMathTeXGyre', 'dsrom10']
TRAIN_PHOTOS = ['astronaut.png', 'chelsea.png', 'rocket.jpg', 'motorcycle_left.png', 'hubble_deep_field.jpg',
                'ihc.png', 'brick.png', 'grass.png', 'gravel.png', 'camera.png', 'coins.png', 'moon.png']
TEST_PHOTOS = ['coffee.png', 'retina.jpg', 'motorcycle_right.png']
TRAIN_VIDEOS = ['cockatoo.mp4']
TEST_VIDEOS = ['realshort.mp4']


def fonts():
    files = sorted(glob.glob('/usr/share/fonts/truetype/**/*.ttf', recursive=True))
    files = [f for f in files if not any(x in os.path.basename(f) for x in EXCLUDE_FONTS)]
    test = [f for f in files if os.path.basename(f) in TEST_FONTS]
    train = [f for f in files if os.path.basename(f) not in TEST_FONTS]
    if len(train) < 4 or not test:
        raise SystemExit('train_vit: too few fonts installed (needs fonts-dejavu-core and lyx fonts)')
    return train, test


def video_frames(path, n=24, width=320):
    if not shutil.which('ffmpeg'):
        raise SystemExit('train_vit: ffmpeg not found')
    cmd = ['ffmpeg', '-v', 'error', '-i', path, '-vf', f'fps=2,scale={width}:-2', '-frames:v', str(n),
           '-pix_fmt', 'rgb24', '-f', 'rawvideo', '-']
    raw = subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout
    probe = subprocess.run(['ffprobe', '-v', 'error', '-select_streams', 'v:0', '-show_entries',
                            'stream=width,height', '-of', 'csv=p=0', path], check=True,
                           stdout=subprocess.PIPE, text=True).stdout.split(',')
    w0, h0 = int(probe[0]), int(probe[1])
    h = int(round(h0 * width / w0 / 2)) * 2
    k = len(raw) // (width * h * 3)
    return [f for f in np.frombuffer(raw[:k * width * h * 3], np.uint8).reshape(k, h, width, 3)]


def backgrounds(photos, videos):
    from skimage import io
    out = []
    for p in photos:
        img = io.imread(os.path.join(SKIMAGE_DIR, p))
        if img.ndim == 2:
            img = np.stack([img] * 3, -1)
        img = img[..., :3]
        if img.dtype != np.uint8:  # e.g. 16-bit or float images
            img = (255 * (img.astype(np.float64) / max(img.max(), 1))).astype(np.uint8)
        out.append(img)
    for v in videos:
        out += video_frames(os.path.join(IMAGEIO_DIR, v))
    from PIL import Image
    pil = []
    for img in out:  # PIL images, short side <= 320 (crops are resized to 48 anyway)
        im = Image.fromarray(np.ascontiguousarray(img))
        k = 320 / min(im.size)
        if k < 1:
            im = im.resize((max(1, round(im.size[0] * k)), max(1, round(im.size[1] * k))), Image.BOX)
        pil.append(im)
    return pil


def render(rng, font_files, bgs, n, font_cache):
    """n samples: (uint8 [n, IMG, IMG, 3], int64 labels). Sizes and offsets are given for a
    48 px image and scale with IMG (the random draws are the same for every IMG)."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont
    xs = np.empty((n, IMG, IMG, 3), np.uint8)
    xf = np.empty((n, IMG, IMG, 3), np.float32)
    ys = rng.integers(0, 10, n)
    for i in range(n):
        bg = bgs[rng.integers(len(bgs))]
        W, H = bg.size
        side = int(rng.uniform(0.15, 0.6) * min(H, W))
        y0, x0 = int(rng.integers(0, H - side + 1)), int(rng.integers(0, W - side + 1))
        tile = bg.resize((IMG, IMG), Image.BILINEAR, box=(x0, y0, x0 + side, y0 + side))
        if rng.random() < 0.5:
            tile = tile.transpose(Image.FLIP_LEFT_RIGHT)
        f = font_files[rng.integers(len(font_files))]
        size = int(int(rng.integers(26, 40)) * (IMG / 48))
        ch = str(int(ys[i]))
        key = (f, size, ch)
        if key not in font_cache:  # the centred glyph as an alpha layer
            font = ImageFont.truetype(f, size)
            layer = Image.new('L', (IMG, IMG), 0)
            d = ImageDraw.Draw(layer)
            bbox = d.textbbox((0, 0), ch, font=font)
            gw, gh = bbox[2] - bbox[0], bbox[3] - bbox[1]
            d.text(((IMG - gw) / 2 - bbox[0], (IMG - gh) / 2 - bbox[1]), ch, font=font, fill=255)
            font_cache[key] = layer
        layer = font_cache[key].rotate(float(rng.uniform(-15, 15)), resample=Image.BILINEAR,
                                       translate=(int(int(rng.integers(-7, 8)) * (IMG / 48)),
                                                  int(int(rng.integers(-7, 8)) * (IMG / 48))))
        if rng.random() < 0.3:
            layer = layer.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.0)) * (IMG / 48)))
        arr = np.asarray(tile, np.float32)
        lum = arr.mean()
        arr = lum + (arr - lum) * rng.uniform(0.4, 0.8)  # soften the background's texture
        # text colour: a random colour whose luminance contrasts with the local background
        base = rng.uniform(0, 90, 3) if lum > 128 else rng.uniform(165, 255, 3)
        if rng.random() < 0.1:
            base = rng.uniform(0, 255, 3)  # some low-contrast samples
        alpha = np.asarray(layer, np.float32)[..., None] / 255.0 * rng.uniform(0.75, 1.0)
        xf[i] = arr * (1 - alpha) + base[None, None, :] * alpha
    sigma = rng.uniform(0, 8, n).astype(np.float32)
    xf += rng.standard_normal(xf.shape, dtype=np.float32) * sigma[:, None, None, None]
    np.clip(xf, 0, 255, out=xf)
    xs[:] = xf.astype(np.uint8)
    return xs, ys.astype(np.int64)


def to_input(x_u8):
    x = x_u8.astype(np.float32) / 255.0
    return np.ascontiguousarray(((x - MEAN) / STD).transpose(0, 3, 1, 2))


def sincos_pos(side, dim):
    """[1 + side*side, dim] position table: row 0 (CLS) zero; the token at (y, x) gets
    sin/cos of y and of x at dim/4 frequencies 1/10000^(k/(dim/4)) each."""
    q = dim // 4
    omega = 1.0 / 10000 ** (np.arange(q, dtype=np.float64) / q)
    yy, xx = np.meshgrid(np.arange(side), np.arange(side), indexing='ij')
    ty, tx = yy.reshape(-1, 1) * omega, xx.reshape(-1, 1) * omega
    table = np.concatenate([np.sin(tx), np.cos(tx), np.sin(ty), np.cos(ty)], 1)
    return np.concatenate([np.zeros((1, dim)), table], 0).astype(np.float32)


def conv_stem_vit(ViT, img, dim, depth, heads):
    """ViT whose patch embedding is a convolutional stem of total stride 8 (ViT_C): 3x3 stride-2
    convs 3->dim/4->dim/2->dim with BatchNorm+ReLU, then a 1x1 conv (the exporter folds each
    BatchNorm into its conv). Same tokens, CLS, position table and blocks as zoo_vit.ViT."""
    import torch.nn as nn
    model = ViT(img=img, patch=8, dim=dim, depth=depth, heads=heads, mlp_ratio=4.0, classes=10, style='manual')
    chans = [3, dim // 4, dim // 2, dim]
    layers = []
    for cin, cout in zip(chans[:-1], chans[1:]):
        layers += [nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    model.patch_embed = nn.Sequential(*layers, nn.Conv2d(dim, dim, 1))
    return model


def main():
    global IMG
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=os.path.join(ROOT, 'testsuite', 'models', 'trained'))
    ap.add_argument('--name', default='glyphvit', help='output basename')
    ap.add_argument('--img', type=int, default=48, help='image side in pixels (a multiple of 8)')
    ap.add_argument('--stem', choices=['patch', 'conv'], default='patch',
                    help='patch: one 8x8 stride-8 conv; conv: a stride-8 convolutional stem')
    ap.add_argument('--steps', type=int, default=2400)
    ap.add_argument('--pool', type=int, default=24000, help='rendered training images')
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--init', choices=['torch', 'vit'], default='torch',
                    help="torch: PyTorch's default Linear init; vit: the usual ViT init (Linear weights "
                         "truncated normal std 0.02, biases 0)")
    ap.add_argument('--pos', choices=['random', 'sincos'], default='random',
                    help='initial position table: random (normal, std 0.02) or the fixed 2-D sine-cosine '
                         'table of MoCo v3 / "Better plain ViT baselines" (CLS row 0); trained either way')
    ap.add_argument('--dim', type=int, default=64)
    ap.add_argument('--depth', type=int, default=4)
    ap.add_argument('--heads', type=int, default=4)
    ap.add_argument('--test-size', type=int, default=2000)
    ap.add_argument('--eval-every', type=int, default=200, help='steps between progress evaluations')
    ap.add_argument('--eval-size', type=int, default=0, help='held-out images per progress evaluation (0: all)')
    ap.add_argument('--ref-split', choices=['ood', 'indist'], default='ood', help='held-out set of the fixed batch')
    ap.add_argument('--ref-count', type=int, default=64)
    ap.add_argument('--ref-u8', action='store_true', help='store the fixed batch as uint8 NAME.in.u8.npy')
    ap.add_argument('--heldout-dir', default='', help='also write the full held-out sets here')
    ap.add_argument('--render-only', action='store_true', help='write the held-out sets and stop')
    a = ap.parse_args()
    if a.img % 8 or a.img < 16:
        raise SystemExit('train_vit: --img must be a multiple of 8, >= 16')
    if a.render_only and not a.heldout_dir:
        raise SystemExit('train_vit: --render-only needs --heldout-dir')
    IMG = a.img

    import torch
    import torch.nn.functional as F
    from zoo_vit import ViT
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t_start = time.time()

    train_fonts, test_fonts = fonts()
    train_bgs = backgrounds(TRAIN_PHOTOS, TRAIN_VIDEOS)
    test_bgs = backgrounds(TEST_PHOTOS, TEST_VIDEOS)
    cache = {}
    rng_test = np.random.default_rng(a.seed + 1000)
    xt_u8, yt = render(rng_test, test_fonts, test_bgs, a.test_size, cache)
    xv_u8, yv = render(np.random.default_rng(a.seed + 2000), train_fonts, train_bgs, a.test_size, cache)
    if a.heldout_dir:
        os.makedirs(a.heldout_dir, exist_ok=True)
        for split, x8, y in (('ood', xt_u8, yt), ('indist', xv_u8, yv)):
            np.save(os.path.join(a.heldout_dir, f'{a.name}.{split}.u8.npy'), x8)
            np.save(os.path.join(a.heldout_dir, f'{a.name}.{split}.labels.npy'), y)
        print(f'train_vit: wrote the held-out sets ({a.test_size} images each) to {a.heldout_dir}', flush=True)
        if a.render_only:
            return 0
    xt, xv = torch.from_numpy(to_input(xt_u8)), torch.from_numpy(to_input(xv_u8))

    if a.stem == 'conv':
        model = conv_stem_vit(ViT, IMG, a.dim, a.depth, a.heads)
    else:
        model = ViT(img=IMG, patch=8, dim=a.dim, depth=a.depth, heads=a.heads, mlp_ratio=4.0, classes=10,
                    style='manual')
    if a.init == 'vit':
        for mod in model.modules():
            if isinstance(mod, torch.nn.Linear):
                torch.nn.init.trunc_normal_(mod.weight, std=0.02, a=-0.04, b=0.04)
                torch.nn.init.zeros_(mod.bias)
    if a.pos == 'sincos':
        with torch.no_grad():
            model.pos_embed.copy_(torch.from_numpy(sincos_pos(IMG // 8, a.dim))[None])
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.05, betas=(0.9, 0.99))
    warm = max(1, a.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, a.steps) / a.steps)))

    def evaluate(x, y):
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(x[i:i + 500]).argmax(-1) for i in range(0, len(x), 500)])
        model.train()
        return float((pred.numpy() == y).mean())

    # A fixed pool of rendered training images (rendering is the slow part), kept as uint8 and
    # reused over epochs with a random shift of up to IMG/12 pixels per sample (reflection padding).
    t0 = time.time()
    rng = np.random.default_rng(a.seed)
    pool_u8, yu = render(rng, train_fonts, train_bgs, a.pool, cache)
    pool_y = torch.from_numpy(yu)
    pad = IMG // 12
    t_render = time.time() - t0
    print(f'train_vit: rendered {a.pool} training and {2 * a.test_size} test images in {t_render:.0f} s '
          f'({len(train_fonts)} train fonts, {len(test_fonts)} held-out fonts)', flush=True)
    g = torch.Generator().manual_seed(a.seed)
    order, pos = torch.randperm(a.pool, generator=g), 0
    ne = a.eval_size if a.eval_size > 0 else a.test_size
    # SIGINT (Ctrl-C) ends training after the current step and still exports the model as it
    # is (NAME.json then records steps_done < steps): a long run can be stopped at a plateau.
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    model.train()
    done = 0
    for step in range(a.steps):
        if stop:
            print(f'train_vit: interrupted after {step} steps; exporting', flush=True)
            break
        if pos + a.batch > a.pool:
            order, pos = torch.randperm(a.pool, generator=g), 0
        idx = order[pos:pos + a.batch]
        pos += a.batch
        sh = torch.randint(0, 2 * pad + 1, (a.batch, 2), generator=g)
        padded = F.pad(torch.from_numpy(to_input(pool_u8[idx.numpy()])), (pad, pad, pad, pad), mode='reflect')
        xb = torch.stack([padded[k, :, dy:dy + IMG, dx:dx + IMG]
                          for k, (dy, dx) in enumerate(zip(sh[:, 0].tolist(), sh[:, 1].tolist()))])
        yb = pool_y[idx]
        loss = F.cross_entropy(model(xb), yb, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        done = step + 1
        if (step + 1) % a.eval_every == 0 or step + 1 == a.steps:
            print(f'train_vit: step {step + 1}/{a.steps} loss {loss.item():.3f} '
                  f'held-out acc ood {evaluate(xt[:ne], yt[:ne]):.4f} indist {evaluate(xv[:ne], yv[:ne]):.4f} '
                  f'({time.time() - t_start:.0f} s)', flush=True)

    signal.signal(signal.SIGINT, signal.default_int_handler)
    acc_test, acc_val = evaluate(xt, yt), evaluate(xv, yv)
    os.makedirs(a.out, exist_ok=True)
    model.eval()
    xr_u8, yr = (xt_u8, yt) if a.ref_split == 'ood' else (xv_u8, yv)
    x_ref = torch.from_numpy(to_input(xr_u8[:a.ref_count]))
    y_ref = yr[:a.ref_count]
    path = os.path.join(a.out, f'{a.name}.onnx')
    torch.onnx.export(model, (x_ref[:1],), path, input_names=['pixel_values'], output_names=['logits'],
                      dynamic_axes={'pixel_values': {0: 'batch'}, 'logits': {0: 'batch'}}, opset_version=17)
    with torch.no_grad():
        ref = model(x_ref).numpy()
    if a.ref_u8:
        np.save(os.path.join(a.out, f'{a.name}.in.u8.npy'), np.ascontiguousarray(xr_u8[:a.ref_count]))
    else:
        np.save(os.path.join(a.out, f'{a.name}.in.pixel_values.npy'), x_ref.numpy())
    np.save(os.path.join(a.out, f'{a.name}.ref.logits.npy'), ref)
    np.save(os.path.join(a.out, f'{a.name}.labels.npy'), y_ref)
    info = {
        'task': 'digit 0-9 rendered in an installed font over a real photo / video frame crop',
        'input': [1, 3, IMG, IMG], 'patch': 8, 'tokens': (IMG // 8) ** 2 + 1,
        'stem': a.stem, 'init': a.init, 'pos': a.pos, 'dim': a.dim, 'depth': a.depth, 'heads': a.heads, 'params': sum(p.numel() for p in model.parameters()),
        'steps': a.steps, 'steps_done': done, 'batch': a.batch, 'lr': a.lr, 'seed': a.seed, 'threads': a.threads,
        'train_samples_seen': done * a.batch, 'train_pool': a.pool,
        'heldout_accuracy': acc_test, 'heldout_desc': 'fonts and backgrounds never seen in training',
        'heldout_size': a.test_size, 'indist_accuracy': acc_val,
        'indist_desc': 'fresh renders with the training fonts and backgrounds',
        'ref_batch': {'split': a.ref_split, 'count': a.ref_count, 'uint8': a.ref_u8,
                      'accuracy': float((ref.argmax(-1) == y_ref).mean())},
        'train_fonts': [os.path.basename(f) for f in train_fonts],
        'test_fonts': [os.path.basename(f) for f in test_fonts],
        'train_backgrounds': TRAIN_PHOTOS + TRAIN_VIDEOS, 'test_backgrounds': TEST_PHOTOS + TEST_VIDEOS,
        'onnx_bytes': os.path.getsize(path), 'seconds': round(time.time() - t_start, 1),
        'render_seconds': round(t_render, 1), 'torch': torch.__version__,
    }
    with open(os.path.join(a.out, f'{a.name}.json'), 'w') as f:
        json.dump(info, f, indent=1)
    print(f'train_vit: held-out accuracy {acc_test:.4f} (unseen fonts and backgrounds, n={a.test_size}), '
          f'in-distribution {acc_val:.4f}; {info["params"] / 1e6:.2f} M params, '
          f'{info["onnx_bytes"] / 2**20:.2f} MiB ONNX, {info["seconds"]:.0f} s -> {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
