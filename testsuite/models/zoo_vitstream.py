"""vitstream family: a ViTDet/SAM-style plain ViT backbone applied per video frame.

Input frames [T, 3, H, W] (T dynamic: frames are the batch). Patch embedding (conv, patch 16)
to a [T, h, w, D] grid plus an absolute position embedding; blocks use windowed attention
(windows of ws x ws tokens, the grid padded to a multiple of ws as ViTDet does) except every
3rd block, which attends globally. Attention adds ViTDet's decomposed relative position bias
(einsum of q with per-axis tables). Output: the last feature map [T, D, h, w].
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo_common import export, perturb_norms, randn, seed_all


def window_partition(x, ws):
    B, H, W, C = x.shape
    pad_h, pad_w = (ws - H % ws) % ws, (ws - W % ws) % ws
    if pad_h > 0 or pad_w > 0:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    Hp, Wp = H + pad_h, W + pad_w
    x = x.view(B, Hp // ws, ws, Wp // ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, C), (Hp, Wp)


def window_unpartition(windows, ws, pad_hw, hw):
    Hp, Wp = pad_hw
    H, W = hw
    B = windows.shape[0] // (Hp * Wp // ws // ws)
    x = windows.view(B, Hp // ws, Wp // ws, ws, ws, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, Hp, Wp, -1)
    if Hp > H or Wp > W:
        x = x[:, :H, :W, :].contiguous()
    return x


def get_rel_pos(q_size, k_size, rel_pos):
    q_coords = torch.arange(q_size)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size)[None, :] * max(q_size / k_size, 1.0)
    rel = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return rel_pos[rel.long()]


class Attention(nn.Module):
    def __init__(self, dim, heads, size):
        super().__init__()
        self.heads = heads
        hd = dim // heads
        self.scale = hd ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.randn(2 * size - 1, hd) * 0.1)
        self.rel_pos_w = nn.Parameter(torch.randn(2 * size - 1, hd) * 0.1)

    def forward(self, x):
        B, H, W, _ = x.shape
        qkv = self.qkv(x).reshape(B, H * W, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, B * self.heads, H * W, -1).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        Rh = get_rel_pos(H, H, self.rel_pos_h)
        Rw = get_rel_pos(W, W, self.rel_pos_w)
        r_q = q.reshape(B * self.heads, H, W, -1)
        rel_h = torch.einsum('bhwc,hkc->bhwk', r_q, Rh)
        rel_w = torch.einsum('bhwc,wkc->bhwk', r_q, Rw)
        attn = (attn.view(B * self.heads, H, W, H, W) + rel_h[:, :, :, :, None]
                + rel_w[:, :, :, None, :]).view(B * self.heads, H * W, H * W)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).view(B, self.heads, H, W, -1).permute(0, 2, 3, 1, 4).reshape(B, H, W, -1)
        return self.proj(x)


class Block(nn.Module):
    def __init__(self, dim, heads, window, grid):
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, window if window > 0 else grid)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        shortcut = x
        x = self.norm1(x)
        if self.window > 0:
            H, W = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, self.window)
        x = self.attn(x)
        if self.window > 0:
            x = window_unpartition(x, self.window, pad_hw, (H, W))
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class ViTDet(nn.Module):
    def __init__(self, img=672, patch=16, dim=768, depth=12, heads=12, window=14, global_every=3):
        super().__init__()
        grid = img // patch
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.pos_embed = nn.Parameter(torch.randn(1, grid, grid, dim) * 0.02)
        self.blocks = nn.ModuleList([
            Block(dim, heads, 0 if (i + 1) % global_every == 0 else window, grid) for i in range(depth)])

    def forward(self, frames):
        x = self.patch_embed(frames).permute(0, 2, 3, 1) + self.pos_embed
        for b in self.blocks:
            x = b(x)
        return x.permute(0, 3, 1, 2)


CONFIGS = {
    'vitstream_tiny': (dict(img=64, patch=8, dim=32, depth=3, heads=2, window=3), 17, 'tiny', 2),
    'vitstream_b16': (dict(img=672, patch=16, dim=768, depth=12, heads=12, window=14), 17, 'full', 1),
}


def build(name, outdir, seed=0):
    cfg, opset, size, t_ref = CONFIGS[name]
    seed_all(seed)
    model = ViTDet(**cfg)
    perturb_norms(model, seed)
    img = cfg['img']
    ex = randn((1, 3, img, img), seed + 1)
    ref = randn((t_ref, 3, img, img), seed + 2)
    grid = img // cfg['patch']
    return export(outdir, name, model, {'frames': ex}, {'frames': ref}, ['features'], opset,
                  dynamic_axes={'frames': {0: 'T'}, 'features': {0: 'T'}},
                  family='vitstream', size=size,
                  extra={'tokens': grid * grid, 'window': cfg['window'],
                         'global_blocks': [i for i in range(cfg['depth']) if (i + 1) % 3 == 0]})
