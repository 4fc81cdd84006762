"""hybrid family: a conv-then-attention image classifier (MobileViT / EfficientFormer style).

  stem        3x3 Conv stride 2 + BatchNorm + HardSwish
  stages      depthwise-separable blocks: depthwise 3x3 Conv (stride 1 or 2) + BatchNorm + HardSwish,
              squeeze-excite (GlobalAveragePool, 1x1 Conv, ReLU, 1x1 Conv, HardSigmoid, Mul),
              pointwise 1x1 Conv + BatchNorm, a residual when the shape is kept
  attention   1x1 Conv to the attention width, flatten to tokens, pre-norm transformer blocks
              (manual qkv attention, GELU MLP)
  classifier  mean over tokens, LayerNorm, Linear
Exported at opset 17 (HardSwish, LayerNormalization ops) and at opset 13, the older exporters'
forms (HardSwish as HardSigmoid * x, LayerNorm decomposed). BatchNorm statistics are random, so a
wrong fold shows. The export keeps the BatchNormalization nodes (TrainingMode.PRESERVE on the eval
model: torch's eval-mode export would fold them into the Conv weights itself), as older
exporters and other frameworks' converters do; vtopt's fold-affine pass folds them. Batch is
dynamic ('batch').
"""
import torch
import torch.nn as nn

from zoo_common import export, perturb_norms, randn, seed_all
from zoo_vit import Block


class SqueezeExcite(nn.Module):
    def __init__(self, ch, reduced):
        super().__init__()
        self.reduce = nn.Conv2d(ch, reduced, 1)
        self.expand = nn.Conv2d(reduced, ch, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        s = torch.relu(self.reduce(s))
        return x * nn.functional.hardsigmoid(self.expand(s))


class DWSeparable(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.se = SqueezeExcite(cin, max(8, cin // 4))
        self.pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = nn.functional.hardswish(self.bn1(self.dw(x)))
        y = self.bn2(self.pw(self.se(y)))
        return x + y if self.residual else y


class Hybrid(nn.Module):
    def __init__(self, stem=16, stages=((16, 1), (24, 2), (32, 2)), dim=32, depth=1, heads=2,
                 classes=10, **_):
        super().__init__()
        self.stem = nn.Conv2d(3, stem, 3, 2, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(stem)
        blocks, c = [], stem
        for cout, stride in stages:
            blocks.append(DWSeparable(c, cout, stride))
            c = cout
        self.stages = nn.Sequential(*blocks)
        self.to_tokens = nn.Conv2d(c, dim, 1)
        self.blocks = nn.ModuleList([Block(dim, heads, 2.0, 'manual') for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = nn.functional.hardswish(self.stem_bn(self.stem(x)))
        x = self.to_tokens(self.stages(x)).flatten(2).transpose(1, 2)
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x.mean(1)))


CONFIGS = {
    'tiny': dict(img=32, stem=16, stages=((16, 1), (24, 2), (32, 2)), dim=32, depth=1, heads=2, classes=10),
    # 256 px: 128x128 after the stem, 16x16 = 256 tokens of width 192 into 4 attention blocks
    'full': dict(img=256, stem=32, stages=((32, 1), (64, 2), (64, 1), (96, 2), (96, 1), (128, 2), (128, 1)),
                 dim=192, depth=4, heads=3, classes=1000),
}

# name -> (config, opset, size class)
MODELS = {
    'hybrid_tiny_op17': ('tiny', 17, 'tiny'),
    'hybrid_tiny_op13': ('tiny', 13, 'tiny'),
    'hybrid_full_op17': ('full', 17, 'full'),
}


def randomize_batchnorm(model, seed):
    g = torch.Generator().manual_seed(seed + 104729)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))


def build(name, outdir, seed=0):
    cfg_name, opset, size = MODELS[name]
    cfg = CONFIGS[cfg_name]
    seed_all(seed)
    model = Hybrid(**cfg)
    perturb_norms(model, seed)
    randomize_batchnorm(model, seed)
    img = cfg['img']
    x_export = randn((1, 3, img, img), seed + 1)
    x_ref = randn((2 if size == 'tiny' else 1, 3, img, img), seed + 2)
    return export(outdir, name, model, {'pixel_values': x_export}, {'pixel_values': x_ref},
                  ['logits'], opset,
                  dynamic_axes={'pixel_values': {0: 'batch'}, 'logits': {0: 'batch'}},
                  family='hybrid', size=size, extra={'config': cfg_name},
                  export_kwargs={'training': torch.onnx.TrainingMode.PRESERVE})
