"""vggt family: a VGGT-style multi-frame aggregator.

Input images [B, T, 3, H, W] (T dynamic). Per frame: conv patch embedding (patch 14), then a
camera token and 4 register tokens are prepended (the first frame uses its own camera/register
tokens, the other frames share a second set, as in VGGT). Blocks alternate
  frame attention   tokens as [B*T, P, D]  (each frame attends to itself)
  global attention  tokens as [B, T*P, D]  (all frames attend to each other)
Attention uses qk-norm (LayerNorm over the head dim) and 2-D RoPE (rows rotate the first half
of each head, columns the second; special tokens sit at position 0, patches at 1..).
Output: the concatenation of the last frame block's and the last global block's tokens,
[B, T, P, 2D], which is what VGGT's camera/depth heads read.
"""
import torch
import torch.nn as nn

from zoo_common import export, perturb_norms, randn, seed_all


def rope_tables(grid, head_dim, base=100.0):
    """cos/sin tables [P, head_dim] for 2-D RoPE over a grid x grid patch layout plus
    5 special tokens at position (0, 0)."""
    half = head_dim // 2
    inv = 1.0 / (base ** (torch.arange(0, half, 2, dtype=torch.float32) / half))
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing='ij')
    pos_y = torch.cat([torch.zeros(5), ys.flatten().float() + 1])
    pos_x = torch.cat([torch.zeros(5), xs.flatten().float() + 1])
    fy = torch.outer(pos_y, inv)
    fx = torch.outer(pos_x, inv)
    ang = torch.cat([fy, fy, fx, fx], dim=-1)  # [P, head_dim]
    return ang.cos(), ang.sin()


def rotate_half(x):
    """Rotation inside each of the two RoPE halves (y half, x half)."""
    q = x.shape[-1] // 4
    y1, y2, x1, x2 = x[..., :q], x[..., q:2 * q], x[..., 2 * q:3 * q], x[..., 3 * q:]
    return torch.cat([-y2, y1, -x2, x1], dim=-1)


class RopeAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.hd = heads, dim // heads
        self.scale = self.hd ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.LayerNorm(self.hd)
        self.k_norm = nn.LayerNorm(self.hd)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, cos, sin):
        # cos/sin: [n_rep, head_dim] broadcast over the sequence (n_rep frames of P tokens).
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = RopeAttention(dim, heads)
        self.ls1 = nn.Parameter(torch.full((dim,), 0.5))
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.ls2 = nn.Parameter(torch.full((dim,), 0.5))

    def forward(self, x, cos, sin):
        x = x + self.ls1 * self.attn(self.norm1(x), cos, sin)
        return x + self.ls2 * self.mlp(self.norm2(x))


class Aggregator(nn.Module):
    def __init__(self, img=224, patch=14, dim=384, heads=6, depth=12):
        super().__init__()
        self.grid = img // patch
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.pos_embed = nn.Parameter(torch.randn(1, self.grid * self.grid, dim) * 0.02)
        # [1, 2, n, dim]: index 0 for the first frame, 1 for the others (VGGT's layout).
        self.camera_token = nn.Parameter(torch.randn(1, 2, 1, dim))
        self.register_token = nn.Parameter(torch.randn(1, 2, 4, dim) * 0.5)
        self.frame_blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.global_blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        cos, sin = rope_tables(self.grid, dim // heads)
        self.register_buffer('rope_cos', cos, persistent=False)
        self.register_buffer('rope_sin', sin, persistent=False)

    @staticmethod
    def _special(tok, B, T):
        first = tok[:, 0:1].expand(B, 1, tok.shape[2], tok.shape[3])
        rest = tok[:, 1:2].expand(B, T - 1, tok.shape[2], tok.shape[3])
        return torch.cat([first, rest], dim=1).reshape(B * T, tok.shape[2], tok.shape[3])

    def forward(self, images):
        B, T, C, H, W = images.shape
        x = self.patch_embed(images.reshape(B * T, C, H, W)).flatten(2).transpose(1, 2)
        x = x + self.pos_embed
        x = torch.cat([self._special(self.camera_token, B, T),
                       self._special(self.register_token, B, T), x], dim=1)
        P, D = x.shape[1], x.shape[2]
        cos_f, sin_f = self.rope_cos, self.rope_sin
        cos_g, sin_g = cos_f.repeat(T, 1), sin_f.repeat(T, 1)
        frame_out = global_out = x
        for fb, gb in zip(self.frame_blocks, self.global_blocks):
            x = fb(x.reshape(B * T, P, D), cos_f, sin_f)
            frame_out = x
            x = gb(x.reshape(B, T * P, D), cos_g, sin_g)
            global_out = x
        return torch.cat([frame_out.reshape(B, T, P, D), global_out.reshape(B, T, P, D)], dim=-1)


CONFIGS = {
    'vggt_tiny': (dict(img=28, patch=14, dim=32, heads=2, depth=2), 17, 'tiny', 3),
    'vggt_full': (dict(img=224, patch=14, dim=384, heads=6, depth=12), 17, 'full', 4),
}


def build(name, outdir, seed=0):
    cfg, opset, size, t_ref = CONFIGS[name]
    seed_all(seed)
    model = Aggregator(**cfg)
    perturb_norms(model, seed)
    img = cfg['img']
    x_export = randn((1, 2, 3, img, img), seed + 1)
    x_ref = randn((1, t_ref, 3, img, img), seed + 2)
    P = (img // cfg['patch']) ** 2 + 5
    return export(outdir, name, model, {'images': x_export}, {'images': x_ref}, ['tokens'], opset,
                  dynamic_axes={'images': {1: 'T'}, 'tokens': {1: 'T'}},
                  family='vggt', size=size,
                  extra={'tokens_per_frame': P, 'ref_frames': t_ref})
