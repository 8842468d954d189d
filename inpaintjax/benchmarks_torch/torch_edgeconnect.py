"""PyTorch equivalents of the EdgeConnect cases `python -m inpaintjax.bench --family edgeconnect`
times, for a side-by-side run.

Written for this benchmark from the paper's and knazeri/edge-connect's published architecture (not
taken from that repository): the same networks as inpaintjax.models.edgeconnect (reflect padding,
InstanceNorm without affine, 8 dilated residual blocks, 4x4 stride-2 transposed convolutions,
torch's `spectral_norm` on G1 and both discriminators) and the same computation per iteration as
inpaintjax.families.edgeconnect, channels-last tensors:

  train_edge     mode 1: G1 forward; D1 on [grey, edges] and [grey, G1 out] (detached), nsgan;
                 D1 step; G1 adversarial + 10 x feature matching through the pre-update D1
                 (taken before the D1 step, as inpaintjax does); Adam (0, 0.9), G 1e-4, D 1e-5
  train_inpaint  mode 2: G2 forward on ground-truth edges; D2 step; G2 loss 0.1 adv + L1 / hole
                 fraction + 0.1 perceptual + 250 style on a random-weight VGG-19 (relu1_1..relu5_2)
  infer          mode 3 test(): G1 then G2 on its raw edge map, composite, no autograd

Run: python -m inpaintjax.benchmarks_torch.torch_edgeconnect --case train_edge --batch 4 --size 256 --repeats 2
Prints one JSON record: median / min / max seconds over the timed repeats after one warm-up.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

from inpaintjax.benchmarks_torch.torch_timing import gram, run_cli

CL = torch.channels_last


def _sn(module, on):
    return spectral_norm(module) if on else module


def _block(cin, cout, k, s, p, sn, transpose=False, bias=True):
    conv = (nn.ConvTranspose2d if transpose else nn.Conv2d)(cin, cout, k, s, p, bias=bias)
    return [_sn(conv, sn), nn.InstanceNorm2d(cout), nn.ReLU()]


class Residual(nn.Module):
    def __init__(self, sn):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(2), _sn(nn.Conv2d(256, 256, 3, dilation=2, bias=not sn), sn),
            nn.InstanceNorm2d(256), nn.ReLU(),
            nn.ReflectionPad2d(1), _sn(nn.Conv2d(256, 256, 3, bias=not sn), sn), nn.InstanceNorm2d(256))

    def forward(self, x):
        return x + self.body(x)


class Generator(nn.Module):
    def __init__(self, cin, cout, sn, blocks=8):
        super().__init__()
        self.net = nn.Sequential(
            nn.ReflectionPad2d(3), *_block(cin, 64, 7, 1, 0, sn), *_block(64, 128, 4, 2, 1, sn),
            *_block(128, 256, 4, 2, 1, sn), *[Residual(sn) for _ in range(blocks)],
            *_block(256, 128, 4, 2, 1, sn, True), *_block(128, 64, 4, 2, 1, sn, True),
            nn.ReflectionPad2d(3), nn.Conv2d(64, cout, 7))

    def forward(self, x):
        return self.net(x)


class Discriminator(nn.Module):
    def __init__(self, cin):
        super().__init__()
        chans, strides = (cin, 64, 128, 256, 512, 1), (2, 2, 2, 1, 1)
        self.convs = nn.ModuleList(_sn(nn.Conv2d(chans[i], chans[i + 1], 4, strides[i], 1, bias=False), True)
                                   for i in range(5))

    def forward(self, x):
        feats = []
        for i, c in enumerate(self.convs):
            x = c(x)
            if i < 4:
                x = F.leaky_relu(x, 0.2)
            feats.append(x)
        return torch.sigmoid(x), feats


VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512)
VGG_NAMES = ("relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu3_3", "relu3_4",
             "relu4_1", "relu4_2", "relu4_3", "relu4_4", "relu5_1", "relu5_2")


class VGG(nn.Module):
    """VGG-19 convolutions up to relu5_2 (random weights: only the cost matters here)."""

    def __init__(self):
        super().__init__()
        layers, cin = [], 3
        for v in VGG19:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers.append(nn.Conv2d(cin, v, 3, padding=1))
                cin = v
        self.layers = nn.ModuleList(layers)
        self.requires_grad_(False)

    def forward(self, x):
        out, names = {}, iter(VGG_NAMES)
        for layer in self.layers:
            x = layer(x)
            if isinstance(layer, nn.Conv2d):
                x = F.relu(x)
                out[next(names)] = x
        return out


def make_batch(batch, size):
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, size, size, generator=g)
    grey = image.mean(1, keepdim=True)
    edges = (torch.rand(batch, 1, size, size, generator=g) > 0.9).float()
    mask = torch.zeros(batch, 1, size, size)
    mask[..., size // 4: size // 2, size // 4: 3 * size // 4] = 1
    return [t.contiguous(memory_format=CL) for t in (image, grey, edges, mask)]


def bce(p, real):
    return F.binary_cross_entropy(p, torch.full_like(p, 1.0 if real else 0.0))


def train_edge(batch, size, blocks=8):
    g, d = Generator(3, 1, True, blocks).to(memory_format=CL), Discriminator(2).to(memory_format=CL)
    opt_g = torch.optim.Adam(g.parameters(), 1e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), 1e-5, betas=(0.0, 0.9))
    image, grey, edges, mask = make_batch(batch, size)

    def step():
        x = torch.cat([grey * (1 - mask) + mask, edges * (1 - mask), mask], 1)
        out = torch.sigmoid(g(x))
        real_in, fake_in = torch.cat([grey, edges], 1), torch.cat([grey, out.detach()], 1)
        d.requires_grad_(True)
        real, real_feats = d(real_in)
        fake, _ = d(fake_in)
        d_loss = (bce(real, True) + bce(fake, False)) / 2
        # generator terms through the discriminator as it was before its update
        d.requires_grad_(False)
        gen, gen_feats = d(torch.cat([grey, out], 1))
        g_loss = bce(gen, True) + 10 * sum((a - b.detach()).abs().mean() for a, b in zip(gen_feats, real_feats))
        opt_d.zero_grad(set_to_none=True)
        opt_g.zero_grad(set_to_none=True)
        d_loss.backward()
        g_loss.backward()
        opt_d.step()
        opt_g.step()
        return float(g_loss.detach())
    return step


def train_inpaint(batch, size, blocks=8):
    g, d = Generator(4, 3, False, blocks).to(memory_format=CL), Discriminator(3).to(memory_format=CL)
    vgg = VGG().to(memory_format=CL)
    opt_g = torch.optim.Adam(g.parameters(), 1e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), 1e-5, betas=(0.0, 0.9))
    image, grey, edges, mask = make_batch(batch, size)
    with torch.no_grad():
        truth = vgg(torch.cat([image, image * mask]))

    def step():
        out = (torch.tanh(g(torch.cat([image * (1 - mask) + mask, edges], 1))) + 1) / 2
        d.requires_grad_(True)
        real, _ = d(image)
        fake, _ = d(out.detach())
        d_loss = (bce(real, True) + bce(fake, False)) / 2
        d.requires_grad_(False)
        gen, _ = d(out)
        feats = vgg(torch.cat([out, out * mask]))
        b = image.shape[0]
        content = sum((feats[n][:b] - truth[n][:b]).abs().mean()
                      for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"))
        style = sum((gram(feats[n][b:]) - gram(truth[n][b:])).abs().mean()
                    for n in ("relu2_2", "relu3_4", "relu4_4", "relu5_2"))
        g_loss = (0.1 * bce(gen, True) + (out - image).abs().mean() / mask.mean()
                  + 0.1 * content + 250 * style)
        opt_d.zero_grad(set_to_none=True)
        opt_g.zero_grad(set_to_none=True)
        d_loss.backward()
        g_loss.backward()
        opt_d.step()
        opt_g.step()
        return float(g_loss.detach())
    return step


def infer(batch, size, blocks=8):
    g1 = Generator(3, 1, True, blocks).to(memory_format=CL).eval()
    g2 = Generator(4, 3, False, blocks).to(memory_format=CL).eval()
    image, grey, edges, mask = make_batch(batch, size)

    def run():
        with torch.inference_mode():
            e = torch.sigmoid(g1(torch.cat([grey * (1 - mask) + mask, edges * (1 - mask), mask], 1)))
            out = (torch.tanh(g2(torch.cat([image * (1 - mask) + mask, e], 1))) + 1) / 2
            return float((out * mask + image * (1 - mask)).sum())
    return run


def main(argv=None):
    def extra(p):
        p.add_argument("--residual-blocks", type=int, default=8)
    run_cli(__doc__.splitlines()[0], {
        "train_edge": lambda a: train_edge(a.batch, a.size, a.residual_blocks),
        "train_inpaint": lambda a: train_inpaint(a.batch, a.size, a.residual_blocks),
        "infer": lambda a: infer(a.batch, a.size, a.residual_blocks),
    }, extra, repeats=2, argv=argv)

if __name__ == "__main__":
    main()
