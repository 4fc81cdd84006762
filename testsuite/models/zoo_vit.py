"""vit family: ViT/DeiT image classifier with a CLS token, in three attention export styles.

  manual  hand-written attention: one qkv Linear, reshape/permute, unbind, q@k^T*scale, softmax
  mha     torch.nn.MultiheadAttention (batch_first); the exporter emits Shape/Slice splits and
          a pre-scaled q (Div)
  qkv     separate q/k/v Linear layers with q multiplied by the scale before q@k^T
Exported at opset 17 (LayerNormalization op) or 14 (LayerNorm decomposed into
ReduceMean/Sub/Pow/Sqrt/Div). Batch is dynamic ('batch').
"""
import math

import torch
import torch.nn as nn

from zoo_common import export, perturb_norms, randn, seed_all


class ManualAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.hd = heads, dim // heads
        self.scale = self.hd ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class MHAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.mha = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x):
        return self.mha(x, x, x, need_weights=False)[0]


class QKVAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.hd = heads, dim // heads
        self.scale = self.hd ** -0.5
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q = (self.q(x) * self.scale).view(B, N, self.heads, self.hd).transpose(1, 2)
        k = self.k(x).view(B, N, self.heads, self.hd).transpose(1, 2)
        v = self.v(x).view(B, N, self.heads, self.hd).transpose(1, 2)
        a = torch.softmax(torch.matmul(q, k.transpose(2, 3)), dim=-1)
        y = torch.matmul(a, v).transpose(1, 2).contiguous().view(B, N, C)
        return self.o(y)


ATTN = {'manual': ManualAttention, 'mha': MHAttention, 'qkv': QKVAttention}


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio, style):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ATTN[style](dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, img=224, patch=16, dim=384, depth=12, heads=6, mlp_ratio=4.0,
                 classes=1000, style='manual'):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        n = (img // patch) ** 2
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio, style) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x)[:, 0])


CONFIGS = {
    'tiny': dict(img=32, patch=8, dim=64, depth=2, heads=4, classes=10),
    's16': dict(img=224, patch=16, dim=384, depth=12, heads=6, classes=1000),
    'b16': dict(img=224, patch=16, dim=768, depth=12, heads=12, classes=1000),
}

# name -> (config, attention style, opset, size class)
MODELS = {
    'vit_tiny_op17': ('tiny', 'manual', 17, 'tiny'),
    'vit_tiny_op14': ('tiny', 'manual', 14, 'tiny'),
    'vit_tiny_mha_op14': ('tiny', 'mha', 14, 'tiny'),
    'vit_tiny_qkv_op16': ('tiny', 'qkv', 16, 'tiny'),
    'vit_s16_op17': ('s16', 'manual', 17, 'full'),
    'vit_s16_op14': ('s16', 'manual', 14, 'full'),
    'vit_s16_mha_op14': ('s16', 'mha', 14, 'full'),
    'vit_s16_qkv_op17': ('s16', 'qkv', 17, 'full'),
    'vit_b16_op17': ('b16', 'manual', 17, 'full'),
}


def build(name, outdir, seed=0):
    cfg_name, style, opset, size = MODELS[name]
    cfg = CONFIGS[cfg_name]
    seed_all(seed)
    model = ViT(style=style, **cfg)
    perturb_norms(model, seed)
    img = cfg['img']
    x_export = randn((1, 3, img, img), seed + 1)
    # tiny: batch 2 (differs from the export's 1: checks the dynamic batch); full: batch 1
    x_ref = randn((2 if size == 'tiny' else 1, 3, img, img), seed + 2)
    n_tok = (img // cfg['patch']) ** 2 + 1
    flops = 2 * cfg['depth'] * n_tok * (12 * cfg['dim'] ** 2 + 2 * n_tok * cfg['dim'])
    return export(outdir, name, model, {'pixel_values': x_export}, {'pixel_values': x_ref},
                  ['logits'], opset,
                  dynamic_axes={'pixel_values': {0: 'batch'}, 'logits': {0: 'batch'}},
                  family='vit', size=size,
                  extra={'style': style, 'config': cfg_name, 'tokens': n_tok,
                         'gflops_per_image': round(flops / 1e9, 2)})
