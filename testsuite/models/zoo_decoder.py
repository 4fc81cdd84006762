"""decoder family: a Qwen2-style decoder with past key/values and a vision projector, exported
the way vision-language decoders usually are (as three ONNX files, like optimum /
transformers.js exports of LLaVA-style models):

  NAME_embed.onnx      input_ids [B, S] (int64)            -> inputs_embeds [B, S, D]
  NAME_projector.onnx  image_features [B, N, Dv]           -> image_embeds [B, N, D]
                       (LayerNorm, Linear, GELU, Linear)
  NAME.onnx            inputs_embeds [B, S, D], attention_mask [B, past+S] (int64),
                       position_ids [B, S] (int64), past_key_values.I.key/.value
                       [B, kv_heads, past, head_dim] for each layer I
                       -> logits [B, S, vocab], present.I.key/.value [B, kv_heads, past+S, hd]

The caller concatenates projected image tokens and text embeddings into inputs_embeds.
Layers: RMSNorm, q/k/v Linear (with bias) + o Linear, rotary embedding (rotate_half) from
position_ids, grouped-query attention (K/V heads repeated by expand+reshape), causal mask
combined with attention_mask (torch.finfo.min fill), SwiGLU MLP, final RMSNorm, lm_head.
"""
import torch
import torch.nn as nn

from zoo_common import export, perturb_norms, randn, seed_all


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def repeat_kv(x, n_rep):
    B, H, L, hd = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(B, H, n_rep, L, hd).reshape(B, H * n_rep, L, hd)


class Attention(nn.Module):
    def __init__(self, dim, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads, self.hd = heads, kv_heads, dim // heads
        self.q_proj = nn.Linear(dim, heads * self.hd)
        self.k_proj = nn.Linear(dim, kv_heads * self.hd)
        self.v_proj = nn.Linear(dim, kv_heads * self.hd)
        self.o_proj = nn.Linear(heads * self.hd, dim, bias=False)

    def forward(self, x, cos, sin, mask, past_k, past_v):
        B, S, _ = x.shape
        q = self.q_proj(x).view(B, S, self.heads, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, S, self.kv_heads, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, S, self.kv_heads, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = torch.cat([past_k, k], dim=2)
        v = torch.cat([past_v, v], dim=2)
        present = (k, v)
        rep = self.heads // self.kv_heads
        kk, vv = repeat_kv(k, rep), repeat_kv(v, rep)
        w = torch.matmul(q, kk.transpose(2, 3)) / (self.hd ** 0.5) + mask
        w = torch.softmax(w, dim=-1, dtype=torch.float32)
        y = torch.matmul(w, vv).transpose(1, 2).reshape(B, S, self.heads * self.hd)
        return self.o_proj(y), present


class Layer(nn.Module):
    def __init__(self, dim, heads, kv_heads, inter):
        super().__init__()
        self.input_layernorm = RMSNorm(dim)
        self.self_attn = Attention(dim, heads, kv_heads)
        self.post_attention_layernorm = RMSNorm(dim)
        self.gate_proj = nn.Linear(dim, inter, bias=False)
        self.up_proj = nn.Linear(dim, inter, bias=False)
        self.down_proj = nn.Linear(inter, dim, bias=False)

    def forward(self, x, cos, sin, mask, pk, pv):
        a, present = self.self_attn(self.input_layernorm(x), cos, sin, mask, pk, pv)
        x = x + a
        h = self.post_attention_layernorm(x)
        x = x + self.down_proj(nn.functional.silu(self.gate_proj(h)) * self.up_proj(h))
        return x, present


class Decoder(nn.Module):
    def __init__(self, dim, layers, heads, kv_heads, inter, vocab, theta=1e6):
        super().__init__()
        self.layers = nn.ModuleList([Layer(dim, heads, kv_heads, inter) for _ in range(layers)])
        self.norm = RMSNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        hd = dim // heads
        self.register_buffer('inv_freq', 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd),
                             persistent=False)

    def forward(self, inputs_embeds, attention_mask, position_ids, *past):
        B, S, _ = inputs_embeds.shape
        P = past[0].shape[2]
        L = P + S
        freqs = position_ids[:, :, None].float() * self.inv_freq[None, None, :]
        emb = torch.cat([freqs, freqs], dim=-1)
        cos, sin = emb.cos()[:, None], emb.sin()[:, None]
        i = torch.arange(S)[:, None] + P
        j = torch.arange(L)[None, :]
        allowed = (j <= i)[None, None] & (attention_mask[:, None, None, :] > 0)
        mask = torch.where(allowed, torch.tensor(0.0), torch.tensor(torch.finfo(torch.float32).min))
        x = inputs_embeds
        presents = []
        for li, layer in enumerate(self.layers):
            x, (k, v) = layer(x, cos, sin, mask, past[2 * li], past[2 * li + 1])
            presents += [k, v]
        return (self.lm_head(self.norm(x)), *presents)


class Embed(nn.Module):
    def __init__(self, vocab, dim):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, dim)

    def forward(self, input_ids):
        return self.embed_tokens(input_ids)


class Projector(nn.Module):
    def __init__(self, dv, dim):
        super().__init__()
        self.ln_q = nn.LayerNorm(dv, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dv, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, image_features):
        return self.mlp(self.ln_q(image_features))


CONFIGS = {
    'tiny': dict(dim=64, layers=2, heads=4, kv_heads=2, inter=128, vocab=256, dv=32,
                 ex=(1, 3, 4), ref=(2, 2, 5)),           # (batch, seq, past)
    'full': dict(dim=512, layers=12, heads=8, kv_heads=2, inter=1536, vocab=8192, dv=384,
                 ex=(1, 4, 8), ref=(1, 16, 64)),
}


def build(name, outdir, seed=0):
    size = 'tiny' if name.startswith('decoder_tiny') else 'full'
    c = CONFIGS[size]
    seed_all(seed)
    D, hd, kvh = c['dim'], c['dim'] // c['heads'], c['kv_heads']
    if name.endswith('_embed'):
        m = Embed(c['vocab'], D)
        ids_ex = torch.tensor([[1, 2, 3]], dtype=torch.int64)
        g = torch.Generator().manual_seed(seed + 2)
        ids_ref = torch.randint(0, c['vocab'], (2, 7), generator=g, dtype=torch.int64)
        return export(outdir, name, m, {'input_ids': ids_ex}, {'input_ids': ids_ref}, ['inputs_embeds'], 17,
                      dynamic_axes={'input_ids': {0: 'batch', 1: 'seq'}, 'inputs_embeds': {0: 'batch', 1: 'seq'}},
                      family='decoder', size=size)
    if name.endswith('_projector'):
        m = Projector(c['dv'], D)
        perturb_norms(m, seed)
        return export(outdir, name, m, {'image_features': randn((1, 4, c['dv']), seed + 1)},
                      {'image_features': randn((2, 9, c['dv']), seed + 2)}, ['image_embeds'], 17,
                      dynamic_axes={'image_features': {0: 'batch', 1: 'n'}, 'image_embeds': {0: 'batch', 1: 'n'}},
                      family='decoder', size=size)
    m = Decoder(D, c['layers'], c['heads'], kvh, c['inter'], c['vocab'])
    perturb_norms(m, seed)

    def inputs(B, S, P, s):
        d = {'inputs_embeds': randn((B, S, D), s),
             'attention_mask': torch.ones((B, P + S), dtype=torch.int64),
             'position_ids': (torch.arange(S, dtype=torch.int64) + P)[None].repeat(B, 1)}
        if B > 1:  # second sequence left-padded by 2 past positions
            d['attention_mask'][1, :2] = 0
            d['position_ids'][1] -= 2
        for li in range(c['layers']):
            d[f'past_key_values.{li}.key'] = randn((B, kvh, P, hd), s + 100 + 2 * li)
            d[f'past_key_values.{li}.value'] = randn((B, kvh, P, hd), s + 101 + 2 * li)
        return d

    ex, ref = inputs(*c['ex'], seed + 1), inputs(*c['ref'], seed + 2)
    outs = ['logits']
    dyn = {'inputs_embeds': {0: 'batch', 1: 'seq'}, 'attention_mask': {0: 'batch', 1: 'total'},
           'position_ids': {0: 'batch', 1: 'seq'}, 'logits': {0: 'batch', 1: 'seq'}}
    for li in range(c['layers']):
        for kv in ('key', 'value'):
            dyn[f'past_key_values.{li}.{kv}'] = {0: 'batch', 2: 'past'}
            dyn[f'present.{li}.{kv}'] = {0: 'batch', 2: 'total'}
            outs.append(f'present.{li}.{kv}')
    return export(outdir, name, m, ex, ref, outs, 17, dynamic_axes=dyn, family='decoder', size=size,
                  extra={'layers': c['layers'], 'heads': c['heads'], 'kv_heads': kvh, 'head_dim': hd,
                         'vocab': c['vocab'], 'ref_batch_seq_past': list(c['ref'])})
