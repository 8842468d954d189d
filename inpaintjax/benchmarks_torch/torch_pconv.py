"""PyTorch equivalents of the Partial Convolutions cases `python -m inpaintjax.bench --family pconv`
times, for a side-by-side run.

Written for this benchmark (not taken from any implementation): the same U-Net and the same
training step as inpaintjax.models.pconv / inpaintjax.families.pconv, in PyTorch's fast CPU form
(channels-last tensors, oneDNN convolutions):

  train  one PConv step: U-Net forward in training mode (BatchNorm batch statistics), composite,
         VGG-16 (to pool3) on [output; composite; truth] in one batch, loss = valid L1 + 6 hole L1
         + 0.05 perceptual + 120 style + 0.1 TV on the dilated hole, backward, Adam(2e-4)
  infer  U-Net forward in inference mode + composite, no autograd

The partial convolution is computed as inpaintjax does: the valid mask's channels are summed
first and counted by one single-channel all-ones convolution (a multi-channel mask's window sum
is the same for every output channel), the feature convolution runs on X * M, and the result is
re-weighted by window_size / sum(M). Masks carry one channel per skip part only where they differ,
broadcast otherwise, as in the JAX model's concatenations.

Run: python -m inpaintjax.benchmarks_torch.torch_pconv --case train --batch 4 --size 256 --repeats 3
Prints one JSON record: median / min / max seconds over the timed repeats after one warm-up.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from inpaintjax.benchmarks_torch.torch_timing import gram, run_cli

CL = torch.channels_last
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class PConv(nn.Module):
    """NVIDIA-style partial convolution, multi-channel valid mask given as (mask [B,1,H,W] of the
    channel-summed valid counts, number of channels it stands for)."""

    def __init__(self, cin, cout, k, s, bias):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, (k - 1) // 2, bias=bias)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_in")
        self.register_buffer("ones", torch.ones(1, 1, k, k))
        self.window = float(cin * k * k)
        self.s, self.p = s, (k - 1) // 2

    def forward(self, x, valid, valid_count):
        # valid: [B, C, H, W] multi-channel valid mask; valid_count: [B, 1, H, W] its channel sum
        with torch.no_grad():
            summ = F.conv2d(valid_count, self.ones, stride=self.s, padding=self.p)
            new_valid = summ.clamp(0, 1)
            ratio = self.window / (summ + 1e-8) * new_valid
        raw = F.conv2d(x * valid, self.conv.weight, None, self.s, self.p)
        out = raw * ratio
        if self.conv.bias is not None:
            out = (out + self.conv.bias.view(1, -1, 1, 1)) * new_valid
        return out, new_valid


class Block(nn.Module):
    def __init__(self, cin, cout, k, s, bn, act, bias=False):
        super().__init__()
        self.pconv = PConv(cin, cout, k, s, bias)
        self.bn = nn.BatchNorm2d(cout) if bn else None
        self.act = act

    def forward(self, x, valid, count):
        y, new_valid = self.pconv(x, valid, count)
        if self.bn is not None:
            y = self.bn(y)
        if self.act == "relu":
            y = F.relu(y)
        elif self.act == "leaky":
            y = F.leaky_relu(y, 0.2)
        return y, new_valid


class UNet(nn.Module):
    def __init__(self, levels=7, width=64):
        super().__init__()
        w = [width, 2 * width, 4 * width] + [8 * width] * (levels - 3)
        k = [7, 5, 5] + [3] * (levels - 3)
        self.levels = levels
        self.enc = nn.ModuleList()
        cin = 3
        for i in range(levels):
            self.enc.append(Block(cin, w[i], k[i], 2, i > 0, "relu"))
            cin = w[i]
        skip = [3] + w
        self.dec = nn.ModuleList()
        for i in range(levels, 0, -1):
            up = w[i - 1] if i == levels else skip[i]
            last = i == 1
            self.dec.append(Block(up + skip[i - 1], 3 if last else skip[i - 1], 3, 1, not last,
                                  None if last else "leaky", bias=last))

    def forward(self, x, valid1):
        # masks are kept as one channel each; the multi-channel mask of a concatenation is the
        # expanded parts, its channel sum the parts' sums weighted by their channel counts
        feats, masks = [x], [(valid1, 3)]
        h, m, c = x, valid1, 3
        for blk in self.enc:
            h, m = blk(h, m.expand(-1, c, -1, -1), m * c)
            c = h.shape[1]
            feats.append(h)
            masks.append((m, c))
        for j, blk in enumerate(self.dec):
            i = self.levels - j
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            m = F.interpolate(m, scale_factor=2, mode="nearest")
            sm, sc = masks[i - 1]
            c_up = h.shape[1]
            valid = torch.cat([m.expand(-1, c_up, -1, -1), sm.expand(-1, sc, -1, -1)], 1)
            count = m * c_up + sm * sc
            h = torch.cat([h, feats[i - 1]], 1)
            h, m = blk(h, valid, count)
        return h


class VGG16Pools(nn.Module):
    def __init__(self):
        super().__init__()
        cfg = [(3, 64), (64, 64), "P", (64, 128), (128, 128), "P", (128, 256), (256, 256), (256, 256), "P"]
        self.layers = nn.ModuleList([nn.MaxPool2d(2, 2) if c == "P" else nn.Conv2d(c[0], c[1], 3, 1, 1) for c in cfg])
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        pools = []
        for layer in self.layers:
            x = layer(x)
            if isinstance(layer, nn.Conv2d):
                x = F.relu(x)
            else:
                pools.append(x)
        return pools


def make_batch(batch, size):
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, size, size, generator=g)
    hole = torch.zeros(batch, 1, size, size)
    hole[:, :, size // 4: size // 2, size // 4: 3 * size // 4] = 1
    return image.contiguous(memory_format=CL), hole.contiguous(memory_format=CL)


def pconv_train(batch, size, levels, width=64):
    net = UNet(levels, width).to(memory_format=CL).train()
    vgg = VGG16Pools().to(memory_format=CL).eval()
    opt = torch.optim.Adam(net.parameters(), 2e-4)
    image, hole = make_batch(batch, size)
    gt = ((image - MEAN) / STD).contiguous(memory_format=CL)
    valid = 1 - hole
    x_in = gt * valid
    dil = (F.max_pool2d(hole, 3, 1, 1) > 0).float()
    n = gt.numel()

    def step():
        out = net(x_in, valid)
        comp = hole * out + valid * gt
        feats = vgg(torch.cat([out, comp, gt], 0))
        parts = [torch.chunk(f, 3) for f in feats]
        perc = sum((fo - fg).abs().mean() + (fc - fg).abs().mean() for fo, fc, fg in parts)
        sty = sum((gram(fo) - gram(fg)).abs().mean() + (gram(fc) - gram(fg)).abs().mean()
                  for fo, fc, fg in parts)
        tv = (((dil[:, :, :, 1:] * dil[:, :, :, :-1]) * (comp[:, :, :, 1:] - comp[:, :, :, :-1]).abs()).sum()
              + ((dil[:, :, 1:] * dil[:, :, :-1]) * (comp[:, :, 1:] - comp[:, :, :-1]).abs()).sum()) / n
        loss = ((valid * (out - gt)).abs().mean() + 6 * (hole * (out - gt)).abs().mean()
                + 0.05 * perc + 120 * sty + 0.1 * tv)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())
    return step


def pconv_infer(batch, size, levels, width=64):
    net = UNet(levels, width).to(memory_format=CL).eval()
    image, hole = make_batch(batch, size)
    valid = 1 - hole
    x_in = ((image - MEAN) / STD) * valid

    def run():
        with torch.inference_mode():
            out = net(x_in, valid) * STD + MEAN
            return float((hole * out.clamp(0, 1) + valid * image).sum())
    return run


def main(argv=None):
    def extra(p):
        p.add_argument("--levels", type=int, default=7)
        p.add_argument("--width", type=int, default=64, help="enc_1's channels (published: 64)")
    run_cli(__doc__.splitlines()[0], {
        "train": lambda a: pconv_train(a.batch, a.size, a.levels, a.width),
        "infer": lambda a: pconv_infer(a.batch, a.size, a.levels, a.width),
    }, extra, record_args=("levels", "width"), argv=argv)

if __name__ == "__main__":
    main()
