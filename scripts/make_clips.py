#!/usr/bin/python3
"""Makes real video clips for vtopt's fidelity tests and benchmarks, on demand, into data/clips/.

Sources (all shipped by Debian packages; nothing is downloaded):
  - python3-imageio: cockatoo.mp4 (1280x720, 280 frames), realshort.mp4 (320x240, 36 frames)
  - opencv-doc (optional, if installed): vtest.avi (pedestrians, 768x576, 795 frames)
  - python3-skimage: photos (astronaut, chelsea, coffee, rocket, motorcycle_left, ...) turned
    into clips by a camera pan (a crop window sliding and slowly zooming across the photo)
Videos are decoded with ffmpeg (subprocess), every STRIDE-th frame, scaled so the short side is
SIZE and centre-cropped to SIZE x SIZE. Each clip is saved as float32 [T, 3, SIZE, SIZE],
normalised with the ImageNet mean/std, as data/clips/<name>.npy; data/clips/clips.json lists
them (source, frames, stride, size).

usage: /usr/bin/python3 scripts/make_clips.py [--out data/clips] [--size 224] [--frames 16]
                                              [--set default|all] [--list] [--force]
                                              [--only NAME[,NAME]] [--stride N]
  default: cockatoo/realshort at 224 (16 frames), cockatoo at 672 (4 frames, for vitstream),
           4 photo pans at 224 (16 frames); all: + every photo, vtest.avi if present, 518 sizes.
  --only keeps the --size/--frames jobs whose base name (cockatoo, realshort, astronaut, ...)
  is listed (not the fixed 672/518 ones);
  --stride N decodes every N-th video frame instead of the default (cockatoo 4, realshort 2, vtest 4;
  cockatoo has 280 frames: --stride 2 gives 140; vtest.avi 795). Examples: the Eventful fidelity clip
  (>= 100 real video frames) and the vitstream benchmark clip (ViTDet at 672 px):
      scripts/make_clips.py --only cockatoo --size 64 --frames 140 --stride 2
      scripts/make_clips.py --only cockatoo --size 672 --frames 120 --stride 2
  A clip's name records size and frame count (cockatoo_672_t120); a non-default stride is
  recorded in clips.json.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

IMAGEIO_DIR = '/usr/lib/python3/dist-packages/imageio/resources/images'
SKIMAGE_DIR = '/usr/lib/python3/dist-packages/skimage/data'
OPENCV_DIR = '/usr/share/doc/opencv-doc/examples/data'

VIDEOS = {
    'cockatoo': os.path.join(IMAGEIO_DIR, 'cockatoo.mp4'),
    'realshort': os.path.join(IMAGEIO_DIR, 'realshort.mp4'),
    'vtest': os.path.join(OPENCV_DIR, 'vtest.avi'),
}
PHOTOS = ['astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg', 'motorcycle_left.png',
          'hubble_deep_field.jpg', 'retina.jpg', 'ihc.png', 'horse.png']


def normalise(frames_u8):
    """[T, H, W, 3] uint8 -> [T, 3, H, W] float32, ImageNet-normalised."""
    x = frames_u8.astype(np.float32) / 255.0
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def decode_video(path, size, frames, stride, start=0):
    if not shutil.which('ffmpeg'):
        raise SystemExit('make_clips: ffmpeg not found (scripts/setup.sh installs it)')
    vf = (f"select='gte(n\\,{start})*not(mod(n-{start}\\,{stride}))',"
          f'scale=w={size}:h={size}:force_original_aspect_ratio=increase:flags=area,crop={size}:{size}')
    cmd = ['ffmpeg', '-v', 'error', '-i', path, '-vf', vf, '-vsync', '0', '-frames:v', str(frames),
           '-pix_fmt', 'rgb24', '-f', 'rawvideo', '-']
    raw = subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout
    n = len(raw) // (size * size * 3)
    if n == 0:
        raise RuntimeError(f'{path}: no frames decoded')
    return np.frombuffer(raw[:n * size * size * 3], np.uint8).reshape(n, size, size, 3)


def load_photo(name):
    from skimage import io
    img = io.imread(os.path.join(SKIMAGE_DIR, name))
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return img[..., :3]


def pan_photo(img, size, frames, seed):
    """A camera pan: a square window (55-70% of the short side) slides across the photo along a
    line chosen from the seed, zooming in by 15% over the clip; each crop is resized to size."""
    from skimage.transform import resize
    rng = np.random.default_rng(seed)
    H, W = img.shape[:2]
    side0 = rng.uniform(0.55, 0.7) * min(H, W)
    side1 = side0 * 0.85
    y0, x0 = rng.uniform(0, 1, 2)
    y1, x1 = 1 - y0, 1 - x0
    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        a = t / max(frames - 1, 1)
        side = side0 + (side1 - side0) * a
        cy = (y0 + (y1 - y0) * a) * (H - side)
        cx = (x0 + (x1 - x0) * a) * (W - side)
        iy, ix, s = int(round(cy)), int(round(cx)), int(round(side))
        crop = img[iy:iy + s, ix:ix + s]
        out[t] = (resize(crop, (size, size), anti_aliasing=True, preserve_range=True)).round().clip(0, 255).astype(np.uint8)
    return out


def jobs(set_name, size, frames, only=None, stride=None):
    j = [('cockatoo', 'video', 'cockatoo', size, frames, stride or 4),
         ('realshort', 'video', 'realshort', size, frames, stride or 2)]
    if not only:   # with --only, just the --size/--frames jobs
        j.append(('cockatoo', 'video', 'cockatoo', 672, 4, 8))
    photos = PHOTOS[:4] if set_name == 'default' else PHOTOS
    j += [(os.path.splitext(p)[0], 'pan', p, size, frames, 0) for p in photos]
    if set_name == 'all':
        if os.path.exists(VIDEOS['vtest']):
            j.append(('vtest', 'video', 'vtest', size, frames, stride or 4))
        if not only:
            j.append(('cockatoo', 'video', 'cockatoo', 518, 8, 4))
    if only:
        j = [x for x in j if x[0] in only]
    return j


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument('--out', default=os.path.join(root, 'data', 'clips'))
    ap.add_argument('--size', type=int, default=224)
    ap.add_argument('--frames', type=int, default=16)
    ap.add_argument('--set', default='default', choices=['default', 'all'])
    ap.add_argument('--list', action='store_true')
    ap.add_argument('--force', action='store_true')
    ap.add_argument('--only', default='', help='comma-separated base names (cockatoo, realshort, astronaut, ...)')
    ap.add_argument('--stride', type=int, default=0, help='video frame stride (default: per video)')
    a = ap.parse_args()
    only = set(x for x in a.only.split(',') if x)
    os.makedirs(a.out, exist_ok=True)
    man_path = os.path.join(a.out, 'clips.json')
    manifest = {}
    if os.path.exists(man_path):
        with open(man_path) as f:
            manifest = json.load(f)
    todo = jobs(a.set, a.size, a.frames, only, a.stride or None)
    if only and not todo:
        raise SystemExit(f'make_clips: --only {a.only}: no such clip in set {a.set}')
    for base, kind, src, size, frames, stride in todo:
        name = f'{base}_{size}_t{frames}' if kind == 'video' else f'pan_{base}_{size}_t{frames}'
        path = os.path.join(a.out, name + '.npy')
        if a.list:
            print(name)
            continue
        if os.path.exists(path) and not a.force and name in manifest:
            print(f'make_clips: {name}: up to date')
            continue
        if kind == 'video':
            u8 = decode_video(VIDEOS[src], size, frames, stride)
            info = {'source': VIDEOS[src], 'stride': stride}
        else:
            u8 = pan_photo(load_photo(src), size, frames, seed=sum(map(ord, src)))
            info = {'source': os.path.join(SKIMAGE_DIR, src), 'pan': True}
        x = normalise(u8)
        np.save(path, x)
        info.update({'file': name + '.npy', 'shape': list(x.shape), 'dtype': 'float32',
                     'normalisation': 'ImageNet mean/std'})
        manifest[name] = info
        print(f'make_clips: {name}: {list(x.shape)} from {info["source"]}')
    if not a.list:
        with open(man_path, 'w') as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
