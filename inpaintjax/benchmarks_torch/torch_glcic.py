"""PyTorch version of the GLCIC cases `python -m inpaintjax.bench --family glcic --torch` times,
for a side-by-side run.

Written for this benchmark from the layer table of the released completion networks
(satoshiiizuka/siggraph2017_inpainting, `completionnet_*.t7`) and the paper's discriminators, as
inpaintjax.models.glcic lays them out (not taken from any port), and the same computation per
step as inpaintjax.families.glcic's joint phase, channels-last tensors, oneDNN convolutions:

  train   one joint-phase step: the completion network's forward (BatchNorm on the batch's
          statistics); one discriminator update on the real images and the completed ones
          (hole from the network, known pixels from the image) in one pass, each branch's
          BatchNorm over both, the global branch on the whole image and the local one on the
          local_size square centred on the hole's box, BCE on the logits; then one completion
          update on mean((mask (C(x) - x))^2) + 0.0004 BCE(D(completed), real) through the updated
          discriminator (frozen for that backward). ADADELTA (rate 1, rho 0.9, eps 1e-6) for both,
          the family's default optimiser.
  infer   the completion network with its running BatchNorm statistics + composite, no autograd

Run: python -m inpaintjax.benchmarks_torch.torch_glcic --case train --batch 4 --size 256 --repeats 3
Prints one JSON record: median / min / max seconds over the timed repeats after one warm-up.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from inpaintjax.benchmarks_torch.torch_timing import parameter_count, run_cli

CL = torch.channels_last
#: the Places2 model's mean pixel (RGB), which inpaint.lua subtracts
MEAN = (0.4560, 0.4472, 0.4155)
#: conv1..conv17: (transposed, kernel, stride, dilation, width multiple of c); conv17 has 3 outputs
LAYERS = ((False, 5, 1, 1, 1), (False, 3, 2, 1, 2), (False, 3, 1, 1, 2), (False, 3, 2, 1, 4),
          (False, 3, 1, 1, 4), (False, 3, 1, 1, 4), (False, 3, 1, 2, 4), (False, 3, 1, 4, 4),
          (False, 3, 1, 8, 4), (False, 3, 1, 16, 4), (False, 3, 1, 1, 4), (False, 3, 1, 1, 4),
          (True, 4, 2, 1, 2), (False, 3, 1, 1, 2), (True, 4, 2, 1, 1), (False, 3, 1, 1, 0.5),
          (False, 3, 1, 1, 0))


class CompletionNetwork(nn.Module):
    """17 convolutions, BatchNorm + ReLU after each but the last, sigmoid output (c = 64:
    6,072,131 parameters)."""

    def __init__(self, c=64):
        super().__init__()
        layers, cin = [], 4
        for i, (transposed, k, s, d, mult) in enumerate(LAYERS):
            cout = 3 if i == len(LAYERS) - 1 else int(c * mult)
            if transposed:
                layers.append(nn.ConvTranspose2d(cin, cout, k, s, 1))
            else:
                layers.append(nn.Conv2d(cin, cout, k, s, d * (k - 1) // 2, dilation=d))
            if i < len(LAYERS) - 1:
                layers += [nn.BatchNorm2d(cout), nn.ReLU()]
            cin = cout
        self.net = nn.Sequential(*layers, nn.Sigmoid())

    def forward(self, x):
        return self.net(x)


class Branch(nn.Module):
    """5x5 stride-2 convolutions with BatchNorm + ReLU, flattened in NHWC order, dense + ReLU."""

    def __init__(self, widths, size, features=1024):
        super().__init__()
        layers, cin = [], 3
        for w in widths:
            layers += [nn.Conv2d(cin, w, 5, 2, 2), nn.BatchNorm2d(w), nn.ReLU()]
            cin = w
            size //= 2
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(cin * size * size, features)

    def forward(self, x):
        return F.relu(self.fc(self.convs(x).permute(0, 2, 3, 1).flatten(1)))


class GlobalLocalDiscriminator(nn.Module):
    """Global branch (6 convolutions) on the image, local branch (5) on the crop, both to 1024,
    concatenated, dense to one logit (c = 64 at 256/128: 45,063,681 parameters)."""

    def __init__(self, size, local_size, c=64):
        super().__init__()
        self.global_branch = Branch((c, 2 * c, 4 * c, 8 * c, 8 * c, 8 * c), size)
        self.local_branch = Branch((c, 2 * c, 4 * c, 8 * c, 8 * c), local_size)
        self.fc = nn.Linear(2048, 1)

    def forward(self, whole, local):
        return self.fc(torch.cat([self.global_branch(whole), self.local_branch(local)], 1))[:, 0]


def make_batch(batch, size, local_size):
    """Random images in [0, 1], the bench's box hole (rows size/4..size/2, columns
    size/4..3 size/4) and the top-left of the local_size square centred on it (clamped)."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, size, size, generator=g)
    mask = torch.zeros(batch, 1, size, size)
    top, left, height, width = size // 4, size // 4, size // 4, size // 2
    mask[..., top:top + height, left:left + width] = 1
    corner = tuple(min(max(a + b // 2 - local_size // 2, 0), size - local_size)
                   for a, b in ((top, height), (left, width)))
    return image.contiguous(memory_format=CL), mask.contiguous(memory_format=CL), corner


def completion_input(image, mask):
    """[image minus the mean pixel, 0 in the hole; the mask], channels-last."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    return torch.cat([(image - mean) * (1 - mask), mask], 1).contiguous(memory_format=CL)


def bce(logits, real):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 1.0 if real else 0.0))


def glcic_train(batch, size, c=64, d_c=64, local_size=128, alpha=0.0004):
    net = CompletionNetwork(c).to(memory_format=CL).train()
    disc = GlobalLocalDiscriminator(size, local_size, d_c).to(memory_format=CL).train()
    opt_g = torch.optim.Adadelta(net.parameters(), lr=1.0, rho=0.9, eps=1e-6)
    opt_d = torch.optim.Adadelta(disc.parameters(), lr=1.0, rho=0.9, eps=1e-6)
    image, mask, (top, left) = make_batch(batch, size, local_size)
    x = completion_input(image, mask)

    def discriminate(real, fake):
        both = torch.cat([real, fake]).contiguous(memory_format=CL)
        crop = both[:, :, top:top + local_size, left:left + local_size].contiguous(memory_format=CL)
        logits = disc(both, crop)
        return logits[:batch], logits[batch:]

    def step():
        out = net(x)
        fake = out * mask + image * (1 - mask)
        disc.requires_grad_(True)
        real_logits, fake_logits = discriminate(image, fake.detach())
        d_loss = 0.5 * (bce(real_logits, True) + bce(fake_logits, False))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        disc.requires_grad_(False)      # the completion update goes through the updated D
        _, fake_logits = discriminate(image, fake)
        g_loss = ((out - image) * mask).square().mean() + alpha * bce(fake_logits, True)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        return float(g_loss.detach())
    step.record = {"parameters": {"completion": parameter_count(net),
                                  "discriminator": parameter_count(disc)}}
    return step


def glcic_infer(batch, size, c=64):
    net = CompletionNetwork(c).to(memory_format=CL).eval()
    image, mask, _ = make_batch(batch, size, size // 2)
    x = completion_input(image, mask)

    def run():
        with torch.inference_mode():
            return float(torch.where(mask > 0.5, net(x), image).sum())
    run.record = {"parameters": {"completion": parameter_count(net)}}
    return run


def main(argv=None):
    def extra(p):
        p.add_argument("--width", type=int, default=64, help="completion network's conv1 channels")
        p.add_argument("--d-width", type=int, default=64, help="discriminator branches' conv1 channels")
        p.add_argument("--local-size", type=int, default=128, help="local discriminator's crop")
    return run_cli(__doc__.splitlines()[0], {
        "train": lambda a: glcic_train(a.batch, a.size, a.width, a.d_width, a.local_size),
        "infer": lambda a: glcic_infer(a.batch, a.size, a.width),
    }, extra, record_args=("width", "d_width", "local_size"), argv=argv)


if __name__ == "__main__":
    main()
