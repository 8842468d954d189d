"""PyTorch version of the Shift-Net cases `python -m inpaintjax.bench --family shiftnet --torch`
times, for a side-by-side run.

Written for this benchmark (not taken from the authors' code) from the architecture and training
step of Zhaoyi-Yan/Shift-Net_pytorch's default model (`unet_shift_triple`, its 70x70 PatchGAN with
spectral norm, its default losses) as inpaintjax.models.shiftnet and inpaintjax.families.shiftnet
compute them, channels-last tensors, oneDNN convolutions:

  train   one step: the ground truth [RGB, known] through the U-Net's levels 1..3 without
          autograd (the guidance target: ReLU of the level-3 encoder feature); the masked input
          through the generator; one discriminator update on [fake (detached); real], both cut to
          the 120x120 square centred on the hole, BCE on the sigmoid outputs (one spectral-norm
          power iteration); one generator update against the updated discriminator with
          100 L1 + 400 discounted L1 on the crop + 0.2 GAN + 10 style + 1 content (VGG-16 pool1..3 of
          the crops, random weights: only the cost matters here) + 1 guidance (the released
          InnerCos gradient: MSE(F m, T) differentiated with respect to F m, injected into F).
          Adam (2e-4, 0.5, 0.999) for both.
  infer   generator forward + composite, no autograd

The shift is dense, as inpaintjax's: for each position the cosine similarity of its decoder vector
with every encoder vector, known positions only (hole columns at -inf), argmax, gather; the
gather's autograd sends the copied vectors' gradient to the chosen encoder positions, which is
the released custom backward with triple_weight 1. Known rows of the shifted output are 0.

Run: python -m inpaintjax.benchmarks_torch.torch_shiftnet --case train --batch 4 --size 256 --repeats 3
Prints one JSON record: median / min / max seconds over the timed repeats after one warm-up.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

from inpaintjax.benchmarks_torch.torch_timing import gram, parameter_count, run_cli

CL = torch.channels_last
SHIFT_LEVEL = 3
VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M")   # up to pool3


def hard_shift(former, latter, hole):
    """former, latter [B, C, h, w]; hole [B, h*w] bool. Returns [B, C, h, w]: at each hole position
    the encoder vector of the known position with the highest cosine similarity, 0 elsewhere. Only
    the hole's rows of the cosine matrix are computed (as inpaintjax's shift and the released
    code's)."""
    b, c, h, w = former.shape
    f = former.detach().flatten(2).transpose(1, 2)          # [B, N, C]
    e_sg = latter.detach().flatten(2).transpose(1, 2)
    index = torch.zeros(b, h * w, dtype=torch.long)
    for i in range(b):
        rows = hole[i].nonzero()[:, 0]
        fr = f[i, rows]                                      # [n_hole, C]
        num = fr @ e_sg[i].T
        den = torch.sqrt(fr.square().sum(-1)[:, None] * e_sg[i].square().sum(-1)[None, :])
        index[i, rows] = (num / den).masked_fill(hole[i][None, :], float("-inf")).argmax(-1)
    e = latter.flatten(2)                                    # [B, C, N]
    picked = torch.gather(e, 2, index[:, None, :].expand(b, c, -1))
    return (picked * hole[:, None, :]).view(b, c, h, w)


def _norm(c):
    return nn.InstanceNorm2d(c, affine=True)


class ShiftUNet(nn.Module):
    """`unet_shift_triple`: num_downs 4x4 stride-2 levels with the shift at level 3 (ngf 64, 8
    levels, 4 input channels: 54,944,771 parameters)."""

    def __init__(self, num_downs=8, ngf=64, cin=4):
        super().__init__()
        self.n = n = num_downs
        ch = [0] + [ngf * min(2 ** (k - 1), 8) for k in range(1, n + 1)]
        self.down = nn.ModuleList([nn.Conv2d(cin if k == 1 else ch[k - 1], ch[k], 4, 2, 1)
                                   for k in range(1, n + 1)])
        self.down_norm = nn.ModuleList([_norm(ch[k]) for k in range(2, n)])
        ups = []
        for k in range(1, n + 1):
            cin_up = ch[n] if k == n else (3 * ch[k] if k == SHIFT_LEVEL else 2 * ch[k])
            ups.append(nn.ConvTranspose2d(cin_up, 3 if k == 1 else ch[k - 1], 4, 2, 1))
        self.up = nn.ModuleList(ups)                          # up[k - 1] is level k's
        self.up_norm = nn.ModuleList([_norm(ch[k - 1]) for k in range(2, n + 1)])

    def encode(self, x, last):
        enc = [None]
        for k in range(1, last + 1):
            y = self.down[k - 1](x if k == 1 else F.leaky_relu(enc[k - 1], 0.2))
            if 1 < k < self.n:
                y = self.down_norm[k - 2](y)
            enc.append(y)
        return enc

    def target(self, x):
        """ReLU of the level-3 encoder feature (the guidance loss's target)."""
        return F.relu(self.encode(x, SHIFT_LEVEL)[SHIFT_LEVEL])

    def forward(self, x, hole):
        """x [B, 4, H, W], hole [B, 1, H, W] -> (tanh output, decoder half F at the shift)."""
        n = self.n
        enc = self.encode(x, n)
        d = self.up_norm[n - 2](self.up[n - 1](F.relu(enc[n])))
        former = None
        for k in range(n - 1, 1, -1):
            y = F.relu(torch.cat([d, enc[k]], 1))
            if k == SHIFT_LEVEL:
                former, latter = y.chunk(2, 1)
                factor = x.shape[2] // y.shape[2]
                small = hole[:, 0, ::factor, ::factor].flatten(1) > 0.5
                y = torch.cat([former, latter, hard_shift(former, latter, small)], 1)
            d = self.up_norm[k - 2](self.up[k - 1](y.contiguous(memory_format=CL)))
        out = torch.tanh(self.up[0](F.relu(torch.cat([d, enc[1]], 1))))
        return out, former


class PatchDiscriminator(nn.Module):
    """The 70x70 PatchGAN with spectral norm, InstanceNorm (affine) and a sigmoid."""

    def __init__(self, ndf=64):
        super().__init__()
        chans, strides = (3, ndf, 2 * ndf, 4 * ndf, 8 * ndf, 1), (2, 2, 2, 1, 1)
        self.convs = nn.ModuleList(spectral_norm(nn.Conv2d(chans[i], chans[i + 1], 4, strides[i], 1))
                                   for i in range(5))
        self.norms = nn.ModuleList(_norm(chans[i + 1]) for i in (1, 2, 3))

    def forward(self, x):
        x = F.leaky_relu(self.convs[0](x), 0.2)
        for conv, norm in zip(self.convs[1:4], self.norms):
            x = F.leaky_relu(norm(conv(x)), 0.2)
        return torch.sigmoid(self.convs[4](x))


class VGG(nn.Module):
    """VGG-16 convolutions up to pool3, outputs pool1..pool3 (random weights: only the cost
    matters here; `widths` the three blocks' channels)."""

    def __init__(self, widths=(64, 128, 256)):
        super().__init__()
        layers, cin, block = [], 3, 0
        for v in VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                block += 1
            else:
                layers += [nn.Conv2d(cin, widths[block], 3, padding=1), nn.ReLU()]
                cin = widths[block]
        self.layers = nn.ModuleList(layers)
        self.requires_grad_(False)

    def forward(self, x):
        out = []
        for layer in self.layers:
            x = layer(x)
            if isinstance(layer, nn.MaxPool2d):
                out.append(x)
        return out


def discount_map(n, gamma=0.9):
    i = torch.arange(n, dtype=torch.float32)
    d = gamma ** torch.minimum(i, n - i)
    return torch.maximum(d[:, None], d[None, :]).view(1, 1, n, n)


def make_batch(batch, size):
    """Real images in [-1, 1], the bench's box hole (rows size/4..size/2, columns size/4..3 size/4),
    the generator's masked input [RGB * known, known] and the ground truth's [RGB, known], and the
    top-left of the size/2 - 8 square centred on the hole."""
    g = torch.Generator().manual_seed(0)
    real = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    hole = torch.zeros(batch, 1, size, size)
    top, left, height, width = size // 4, size // 4, size // 4, size // 2
    hole[..., top:top + height, left:left + width] = 1
    crop = size // 2 - 8
    corner = tuple(min(max(a + b // 2 - crop // 2, 0), size - crop)
                   for a, b in ((top, height), (left, width)))
    known = 1 - hole
    x = torch.cat([real * known, known], 1)
    x_gt = torch.cat([real, known], 1)
    return [t.contiguous(memory_format=CL) for t in (real, hole, x, x_gt)] + [corner, crop]


def bce(p, real):
    return F.binary_cross_entropy(p, torch.full_like(p, 1.0 if real else 0.0))


def shiftnet_train(batch, size, num_downs=8, ngf=64, ndf=64, vgg_widths=(64, 128, 256)):
    gen = ShiftUNet(num_downs, ngf).to(memory_format=CL)
    disc = PatchDiscriminator(ndf).to(memory_format=CL)
    vgg = VGG(vgg_widths).to(memory_format=CL)
    for m in (gen, disc):       # N(0, 0.02) weights, zero biases, as the released init_weights
        for p in m.modules():
            if isinstance(p, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(getattr(p, "weight_orig", p.weight), 0.0, 0.02)
                nn.init.zeros_(p.bias)
    opt_g = torch.optim.Adam(gen.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), 2e-4, betas=(0.5, 0.999))
    real, hole, x, x_gt, (top, left), crop = make_batch(batch, size)
    sd = discount_map(crop)

    def cut(t):
        return t[:, :, top:top + crop, left:left + crop].contiguous(memory_format=CL)

    def step():
        with torch.no_grad():
            target = gen.target(x_gt)
        fake, former = gen(x, hole)
        fake_c, real_c = cut(fake), cut(real)
        disc.requires_grad_(True)
        pred = disc(torch.cat([fake_c.detach(), real_c]))
        d_loss = 0.5 * (bce(pred[:batch], False) + bce(pred[batch:], True))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        disc.requires_grad_(False)
        m = F.interpolate(hole, size=former.shape[2:], mode="nearest")
        # value F m, derivative 1 with respect to F: InnerCos' injected gradient
        masked = (former * m).detach() + (former - former.detach())
        feats = vgg(torch.cat([fake_c, real_c]))
        style = sum(F.mse_loss(gram(f[:batch]), gram(f[batch:])) for f in feats)
        content = sum(F.mse_loss(f[:batch], f[batch:]) for f in feats)
        g_loss = (100 * (fake - real).abs().mean() + 400 * ((fake_c - real_c).abs() * sd).mean()
                  + 0.2 * bce(disc(fake_c), True) + 10 * style + content + F.mse_loss(masked, target))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        return float(g_loss.detach())
    step.record = {"parameters": {"generator": parameter_count(gen),
                                  "discriminator": parameter_count(disc)}}
    return step


def shiftnet_infer(batch, size, num_downs=8, ngf=64):
    gen = ShiftUNet(num_downs, ngf).to(memory_format=CL).eval()
    real, hole, x, _, _, _ = make_batch(batch, size)
    image = (real + 1) / 2

    def run():
        with torch.inference_mode():
            out, _ = gen(x, hole)
            raw = ((out + 1) / 2).clamp(0, 1)
            return float(torch.where(hole > 0.5, raw, image).sum())
    run.record = {"parameters": {"generator": parameter_count(gen)}}
    return run


def main(argv=None):
    def extra(p):
        p.add_argument("--num-downs", type=int, default=8, help="U-Net levels (8 for 256x256)")
        p.add_argument("--ngf", type=int, default=64)
        p.add_argument("--ndf", type=int, default=64)
        p.add_argument("--vgg-widths", default="64,128,256", help="VGG-16 blocks 1-3 channels")
    return run_cli(__doc__.splitlines()[0], {
        "train": lambda a: shiftnet_train(a.batch, a.size, a.num_downs, a.ngf, a.ndf,
                                          tuple(int(v) for v in a.vgg_widths.split(","))),
        "infer": lambda a: shiftnet_infer(a.batch, a.size, a.num_downs, a.ngf),
    }, extra, record_args=("num_downs", "ngf", "ndf"), argv=argv)


if __name__ == "__main__":
    main()
