"""PyTorch equivalents of the GLCIC cases `python -m inpaintjax.bench --family glcic` times, for a
side-by-side run.

Written for this benchmark (not taken from any implementation): the same networks and the same
joint-phase step as inpaintjax.models.glcic / inpaintjax.families.glcic, in PyTorch's fast CPU
form (channels-last tensors, oneDNN convolutions):

  train  one joint step: completion network forward in training mode, one discriminator update on
         [real; completed] in one BatchNorm batch (global branch on the image, local branch on the
         crop around the hole), then the completion update on MSE + 0.0004 BCE against the
         updated discriminator; ADADELTA for both (rate 1, rho 0.9, eps 1e-6)
  infer  completion network forward in inference mode + composite, no autograd

Run: python benchmarks/torch_glcic.py --case train --batch 4 --size 256 --repeats 3
Prints one JSON record: median / min / max seconds over the timed repeats after one warm-up.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_timing import run_cli

CL = torch.channels_last
MEAN = torch.tensor([0.4560, 0.4472, 0.4155]).view(1, 3, 1, 1)
ALPHA = 0.0004


def completion_network(c=64) -> nn.Sequential:
    """The released layer table (17 convolutions, BatchNorm + ReLU after all but the last)."""
    table = [(4, c, 5, 1, 1), (c, 2 * c, 3, 2, 1), (2 * c, 2 * c, 3, 1, 1), (2 * c, 4 * c, 3, 2, 1)]
    table += [(4 * c, 4 * c, 3, 1, d) for d in (1, 1, 2, 4, 8, 16, 1, 1)]
    table += [(4 * c, 2 * c, 4, -2, 1), (2 * c, 2 * c, 3, 1, 1), (2 * c, c, 4, -2, 1),
              (c, c // 2, 3, 1, 1), (c // 2, 3, 3, 1, 1)]
    mods = []
    for i, (cin, cout, k, s, d) in enumerate(table):
        if s < 0:  # transposed, stride 2
            mods.append(nn.ConvTranspose2d(cin, cout, k, 2, 1))
        else:
            mods.append(nn.Conv2d(cin, cout, k, s, d * (k - 1) // 2, dilation=d))
        if i < len(table) - 1:
            mods += [nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*mods, nn.Sigmoid())


def branch(n, size, c=64) -> nn.Sequential:
    chans = [3, c, 2 * c, 4 * c, 8 * c, 8 * c, 8 * c][:n + 1]
    mods = []
    for i in range(n):
        mods += [nn.Conv2d(chans[i], chans[i + 1], 5, 2, 2), nn.BatchNorm2d(chans[i + 1]), nn.ReLU()]
    return nn.Sequential(*mods, nn.Flatten(), nn.Linear(chans[n] * (size >> n) ** 2, 1024), nn.ReLU())


class Discriminator(nn.Module):
    def __init__(self, size, local):
        super().__init__()
        self.glob, self.loc = branch(6, size), branch(5, local)
        self.fc = nn.Linear(2048, 1)

    def forward(self, whole, crop):
        return self.fc(torch.cat([self.glob(whole), self.loc(crop)], 1))[:, 0]


def _data(batch, size):
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, size, size, generator=g).contiguous(memory_format=CL)
    mask = torch.zeros(batch, 1, size, size)
    mask[..., size // 4:size // 2, size // 4:3 * size // 4] = 1
    return image, mask.contiguous(memory_format=CL)


def _train(a):
    size, local = a.size, a.size // 2
    cn = completion_network().to(memory_format=CL)
    d = Discriminator(size, local).to(memory_format=CL)
    opt_c, opt_d = torch.optim.Adadelta(cn.parameters()), torch.optim.Adadelta(d.parameters())
    image, mask = _data(a.batch, size)
    top = max(0, min(size - local, (size // 4 + size // 2) // 2 - local // 2))
    left = max(0, min(size - local, size // 2 - local // 2))

    def crop(x):
        return x[..., top:top + local, left:left + local]

    def step():
        x = torch.cat([(image - MEAN) * (1 - mask), mask], 1)
        out = cn(x)
        fake = out * mask + image * (1 - mask)
        both = torch.cat([image, fake.detach()])
        logits = d(both, crop(both))
        n = image.shape[0]
        loss_d = 0.5 * (F.binary_cross_entropy_with_logits(logits[:n], torch.ones(n))
                        + F.binary_cross_entropy_with_logits(logits[n:], torch.zeros(n)))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        both = torch.cat([image, fake])
        gan = F.binary_cross_entropy_with_logits(d(both, crop(both))[n:], torch.ones(n))
        loss = torch.mean(((out - image) * mask) ** 2) + ALPHA * gan
        opt_c.zero_grad()
        loss.backward()
        opt_c.step()
        return loss.detach().item()

    return step


def _infer(a):
    cn = completion_network().eval().to(memory_format=CL)
    image, mask = _data(a.batch, a.size)

    def step():
        with torch.no_grad():
            out = cn(torch.cat([(image - MEAN) * (1 - mask), mask], 1))
            return (out * mask + image * (1 - mask)).sum().item()

    return step


if __name__ == "__main__":
    run_cli(__doc__.splitlines()[0], {"train": _train, "infer": _infer})
