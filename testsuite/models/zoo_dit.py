"""dit family: a DiT (Peebles & Xie) noise predictor with adaLN-Zero conditioning.

Inputs: latents x [B, 4, S, S], timestep t [B] (float), class y [B] (int64). Patchify by a
strided conv (patch 2), fixed 2-D sin-cos position embedding, timestep MLP on a sinusoidal
embedding, class embedding table (with the extra "null" class for classifier-free guidance),
c = t_emb + y_emb; each block: SiLU(c) -> Linear -> 6 chunks (shift/scale/gate for attention
and MLP), LayerNorm without affine, modulate, gated residual. Final layer: adaLN (2 chunks),
Linear to patch*patch*2C (learned sigma), unpatchify -> [B, 2C, S, S].
adaLN-Zero initialises the modulation and final layers to zero; the zoo uses random values
there instead (as a trained model has), otherwise every output would be 0.
"""
import math

import numpy as np
import torch
import torch.nn as nn

from zoo_common import export, randn, seed_all


def sincos_2d(dim, grid):
    def one(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum('m,d->md', pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)
    gh, gw = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32))
    emb = np.concatenate([one(dim // 2, gw), one(dim // 2, gh)], axis=1)  # DiT's ordering
    return torch.from_numpy(emb).float().unsqueeze(0)


class PlainLayerNorm(nn.Module):
    """LayerNorm without learned affine. torch 1.13 exports nn.LayerNorm(elementwise_affine=
    False) at opset 17 with an empty scale input (an invalid model), so pass constant
    ones/zeros, as DiT exports in the wild do."""
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.register_buffer('one', torch.ones(dim), persistent=False)
        self.register_buffer('zero', torch.zeros(dim), persistent=False)

    def forward(self, x):
        return nn.functional.layer_norm(x, (self.dim,), self.one, self.zero, self.eps)


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class TimestepEmbedder(nn.Module):
    def __init__(self, dim, freq=256):
        super().__init__()
        self.freq = freq
        self.mlp = nn.Sequential(nn.Linear(freq, dim), nn.SiLU(), nn.Linear(dim, dim))
        half = freq // 2
        self.register_buffer('freqs', torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half),
                             persistent=False)

    def forward(self, t):
        args = t[:, None].float() * self.freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.hd = heads, dim // heads
        self.scale = self.hd ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4).unbind(0)
        a = ((q @ k.transpose(-2, -1)) * self.scale).softmax(-1)
        return self.proj((a @ v).transpose(1, 2).reshape(B, N, C))


class DiTBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = PlainLayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = PlainLayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate='tanh'), nn.Linear(4 * dim, dim))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x, c):
        sh1, sc1, g1, sh2, sc2, g2 = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + g1.unsqueeze(1) * self.attn(modulate(self.norm1(x), sh1, sc1))
        return x + g2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), sh2, sc2))


class DiT(nn.Module):
    def __init__(self, size=32, patch=2, cin=4, dim=384, depth=12, heads=6, classes=1000):
        super().__init__()
        self.p, self.cin, self.cout = patch, cin, 2 * cin
        self.grid = size // patch
        self.x_embedder = nn.Conv2d(cin, dim, patch, patch)
        self.t_embedder = TimestepEmbedder(dim)
        self.y_embedder = nn.Embedding(classes + 1, dim)
        self.register_buffer('pos_embed', sincos_2d(dim, self.grid), persistent=False)
        self.blocks = nn.ModuleList([DiTBlock(dim, heads) for _ in range(depth)])
        self.norm_final = PlainLayerNorm(dim)
        self.final_adaLN = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.final_linear = nn.Linear(dim, patch * patch * self.cout)
        with torch.no_grad():  # keep the modulation non-degenerate but moderate
            for m in self.modules():
                if isinstance(m, nn.Sequential) and isinstance(m[0], nn.SiLU):
                    m[1].weight.mul_(0.5)

    def forward(self, x, t, y):
        B = x.shape[0]
        x = self.x_embedder(x).flatten(2).transpose(1, 2) + self.pos_embed
        c = self.t_embedder(t) + self.y_embedder(y)
        for b in self.blocks:
            x = b(x, c)
        shift, scale = self.final_adaLN(c).chunk(2, dim=1)
        x = self.final_linear(modulate(self.norm_final(x), shift, scale))
        g, p, co = self.grid, self.p, self.cout
        x = x.reshape(B, g, g, p, p, co)
        x = torch.einsum('nhwpqc->nchpwq', x)
        return x.reshape(B, co, g * p, g * p)


CONFIGS = {
    'dit_tiny': (dict(size=8, patch=2, cin=4, dim=64, depth=2, heads=4, classes=10), 17, 'tiny'),
    'dit_s2': (dict(size=32, patch=2, cin=4, dim=384, depth=12, heads=6, classes=1000), 17, 'full'),
}


def make_model(name, seed=0):
    cfg = CONFIGS[name][0]
    seed_all(seed)
    model = DiT(**cfg)
    s, c = cfg['size'], cfg['cin']
    # Calibrate the final projection so the predicted noise has unit scale (random weights
    # otherwise give eps ~ 100x too large and an N-step sampling loop diverges).
    with torch.no_grad():
        o = model.eval()(randn((4, c, s, s), seed + 3), torch.tensor([999.0, 600.0, 300.0, 10.0]),
                         torch.tensor([0, 1, 2, 3], dtype=torch.int64))
        sd = float(o.std())
        model.final_linear.weight.div_(sd)
        model.final_linear.bias.div_(sd)
    return model


def build(name, outdir, seed=0):
    cfg, opset, size = CONFIGS[name]
    model = make_model(name, seed)
    s, c = cfg['size'], cfg['cin']
    ex = {'x': randn((1, c, s, s), seed + 1), 't': torch.tensor([500.0]),
          'y': torch.tensor([3], dtype=torch.int64)}
    ref = {'x': randn((2, c, s, s), seed + 2), 't': torch.tensor([999.0, 17.0]),
           'y': torch.tensor([1, cfg['classes']], dtype=torch.int64)}  # second: the null class
    return export(outdir, name, model, ex, ref, ['out'], opset,
                  dynamic_axes={'x': {0: 'batch'}, 't': {0: 'batch'}, 'y': {0: 'batch'}, 'out': {0: 'batch'}},
                  family='dit', size=size,
                  extra={'tokens': (s // cfg['patch']) ** 2, 'classes': cfg['classes'],
                         'latent_channels': c})
