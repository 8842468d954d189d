"""PyTorch version of one DeepFill v1 training iteration, for a side-by-side run with
`python -m inpaintjax.bench --family deepfill_v1 --torch`.

Written for this benchmark (not taken from any port), after the authors' TF code
(JiahuiYu/generative_inpainting tag v1.0.0, `inpaint_model.py`) and inpaintjax's
`families/deepfill_v1.py`, in PyTorch's fastest CPU form that keeps the numerics (channels-last
tensors, oneDNN convolutions, TF 'SAME' padding). The TF-'SAME' convolution and contextual
attention are the v2 benchmark's (inpaintjax/benchmarks_torch/torch_deepfill.py): the layer is the same in v1.

  train   one iteration = five critic updates, each on a fresh batch and box mask: the generator
          forward without autograd, both WGAN critics on [real; composited fake] (global on the
          image, local on the 128x128 crop at the box) plus the gradient penalty on hole pixels
          (double backward, lambda 10); then one generator update on a sixth batch: spatially
          discounted L1 on the crop and known-region L1 for both stages (1.2 / 1.2, coarse 1.2)
          plus 0.001 x the WGAN terms through both critics (frozen for that backward).
          Adam(1e-4, 0.5, 0.9) for the generator and for the two critics.
  infer   generator forward + composite, no autograd

Run: python -m inpaintjax.benchmarks_torch.torch_deepfill_v1 --case train --batch 4 --size 256 --repeats 3
Prints one JSON record: median / min / max seconds over the timed repeats after one warm-up.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from inpaintjax.benchmarks_torch.torch_deepfill import CL, Conv, contextual_attention
from inpaintjax.benchmarks_torch.torch_timing import run_cli


class Plain(nn.Module):
    """v1's gen_conv: a TF-'SAME' convolution, then ELU (or `act`, None for the RGB layers)."""

    def __init__(self, cin, cout, k=3, s=1, d=1, act=F.elu, up=False):
        super().__init__()
        self.conv, self.act, self.up = Conv(cin, cout, k, s, d), act, up

    def forward(self, x):
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        y = self.conv(x)
        return y if self.act is None else self.act(y)


def _encoder(cin, widths, last_act=F.elu):
    layers, c = [], cin
    for i, w in enumerate(widths):
        layers.append(Plain(c, w, 5 if i == 0 else 3, 2 if i in (1, 3) else 1,
                            act=last_act if i == 5 else F.elu))
        c = w
    return layers


def _decoder(cin, f):
    return [Plain(cin, 4 * f), Plain(4 * f, 4 * f), Plain(4 * f, 2 * f, up=True),
            Plain(2 * f, 2 * f), Plain(2 * f, f, up=True), Plain(f, f // 2),
            Plain(f // 2, 3, act=None)]


class GeneratorV1(nn.Module):
    """The v1 coarse-to-fine generator (cnum 32: 3,601,542 parameters)."""

    def __init__(self, f=32):
        super().__init__()
        dil = [Plain(4 * f, 4 * f, d=r) for r in (2, 4, 8, 16)]
        self.enc1 = nn.ModuleList(_encoder(5, (f, 2 * f, 2 * f, 4 * f, 4 * f, 4 * f)))
        self.rest1 = nn.ModuleList(dil + _decoder(4 * f, f))
        self.hallu = nn.ModuleList(_encoder(5, (f, f, 2 * f, 2 * f, 4 * f, 4 * f))
                                   + [Plain(4 * f, 4 * f, d=r) for r in (2, 4, 8, 16)])
        self.pm1 = nn.ModuleList(_encoder(5, (f, f, 2 * f, 4 * f, 4 * f, 4 * f), last_act=F.relu))
        self.pm2 = nn.ModuleList([Plain(4 * f, 4 * f), Plain(4 * f, 4 * f)])
        self.dec = nn.ModuleList(_decoder(8 * f, f))

    @staticmethod
    def _run(layers, x):
        for layer in layers:
            x = layer(x)
        return x

    def forward(self, image, mask):
        xin = image * (1 - mask)
        ones = torch.ones_like(mask)
        x = self._run(self.enc1, torch.cat([xin, ones, ones * mask], 1).contiguous(memory_format=CL))
        mask_s = F.interpolate(mask[:1], size=x.shape[2:], mode="nearest")
        stage1 = self._run(self.rest1, x).clamp(-1, 1)
        xnow = torch.cat([stage1 * mask + xin * (1 - mask), ones, ones * mask], 1)
        xnow = xnow.contiguous(memory_format=CL)
        xh = self._run(self.hallu, xnow)
        xp = contextual_attention(self._run(self.pm1, xnow), mask_s).contiguous(memory_format=CL)
        xp = self._run(self.pm2, xp)
        stage2 = self._run(self.dec, torch.cat([xh, xp], 1)).clamp(-1, 1)
        return stage1, stage2


class Critic(nn.Module):
    """Four 5x5 stride-2 'SAME' convs with LeakyReLU(0.2), flatten (NHWC order), dense -> 1."""

    def __init__(self, size, mults, c=64):
        super().__init__()
        chans = [3] + [m * c for m in mults]
        self.convs = nn.ModuleList([Conv(chans[i], chans[i + 1], 5, 2) for i in range(4)])
        self.fc = nn.Linear(chans[-1] * (size // 16) ** 2, 1)

    def forward(self, x):
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
        return self.fc(x.permute(0, 2, 3, 1).flatten(1))


def discount_map(n, gamma=0.9):
    i = torch.arange(n, dtype=torch.float32)
    d = gamma ** torch.minimum(i, n - i)
    return torch.maximum(d[:, None], d[None, :]).view(1, 1, n, n)


def make_batches(k, batch, size, local):
    """k batches: random images, one box hole per batch inside a local x local box."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(k):
        image = (torch.rand(batch, 3, size, size, generator=g) * 2 - 1).contiguous(memory_format=CL)
        t, l = (int(v) for v in torch.randint(0, size - local, (2,), generator=g))
        dh, dw = (int(v) for v in torch.randint(0, local // 8 + 1, (2,), generator=g))
        mask = torch.zeros(1, 1, size, size)
        mask[..., t + dh:t + local - dh, l + dw:l + local - dw] = 1
        out.append((image, mask.expand(batch, 1, size, size).contiguous(memory_format=CL), (t, l)))
    return out


def penalty(critic, real, fake, mask):
    alpha = torch.rand(real.shape[0], 1, 1, 1)
    x = (real + alpha * (fake - real)).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    slopes = torch.sqrt((grad.square() * mask).sum(dim=(1, 2, 3)))
    return (slopes - 1).square().mean()


def deepfill_v1_train(batch, size, cnum=32, d_cnum=64, critic_steps=5):
    local = size // 2
    gen = GeneratorV1(cnum).to(memory_format=CL)
    d_local = Critic(local, (1, 2, 4, 8), d_cnum).to(memory_format=CL)
    d_global = Critic(size, (1, 2, 4, 4), d_cnum).to(memory_format=CL)
    critics = list(d_local.parameters()) + list(d_global.parameters())
    opt_g = torch.optim.Adam(gen.parameters(), 1e-4, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(critics, 1e-4, betas=(0.5, 0.9))
    batches = make_batches(critic_steps + 1, batch, size, local)
    sd = discount_map(local)

    def crop(x, box):
        return x[:, :, box[0]:box[0] + local, box[1]:box[1] + local]

    def step():
        for p in critics:
            p.requires_grad_(True)
        for image, mask, box in batches[:critic_steps]:
            with torch.no_grad():
                _, s2 = gen(image, mask)
                fake = s2 * mask + image * (1 - mask)
            pos_n = d_global(torch.cat([image, fake]).contiguous(memory_format=CL))
            pos_g, neg_g = torch.chunk(pos_n, 2)
            loc = torch.cat([crop(image, box), crop(fake, box)]).contiguous(memory_format=CL)
            pos_l, neg_l = torch.chunk(d_local(loc), 2)
            d_loss = (neg_g - pos_g).mean() + (neg_l - pos_l).mean() + 10.0 * (
                penalty(d_local, crop(image, box), crop(fake, box), crop(mask, box))
                + penalty(d_global, image, fake, mask))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        for p in critics:
            p.requires_grad_(False)
        image, mask, box = batches[critic_steps]
        s1, s2 = gen(image, mask)
        complete = s2 * mask + image * (1 - mask)
        known = 1 - mask
        l1 = (1.2 * ((crop(image, box) - crop(s1, box)).abs() * sd).mean()
              + ((crop(image, box) - crop(s2, box)).abs() * sd).mean())
        ae = (1.2 * ((image - s1).abs() * known).mean() + ((image - s2).abs() * known).mean()) / known.mean()
        gan = -d_global(complete).mean() - d_local(crop(complete, box).contiguous(memory_format=CL)).mean()
        g_loss = 0.001 * gan + 1.2 * l1 + 1.2 * ae
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        return float(g_loss.detach())
    return step


def deepfill_v1_infer(batch, size, cnum=32):
    gen = GeneratorV1(cnum).to(memory_format=CL).eval()
    image, mask, _ = make_batches(1, batch, size, size // 2)[0]

    def run():
        with torch.inference_mode():
            _, s2 = gen(image, mask)
            return float((s2 * mask + image * (1 - mask)).sum())
    return run


def main(argv=None):
    def extra(p):
        p.add_argument("--cnum", type=int, default=32)
        p.add_argument("--d-cnum", type=int, default=64)
    run_cli(__doc__.splitlines()[0], {
        "train": lambda a: deepfill_v1_train(a.batch, a.size, a.cnum, a.d_cnum),
        "infer": lambda a: deepfill_v1_infer(a.batch, a.size, a.cnum),
    }, extra, argv=argv)

if __name__ == "__main__":
    main()
