"""PyTorch equivalents of the cases `python -m inpaintjax.bench` times, for a side-by-side run.

Written for this benchmark from the DeepFill v2 paper (Yu et al., "Free-Form Image Inpainting with
Gated Convolution", arXiv 1806.03589) and the authors' TF1 code, JiahuiYu/generative_inpainting
(`inpaint_model.py`, `inpaint_ops.py`), not taken from any port: the same layer stack and the
same DeepFill v2 computation as inpaintjax, in PyTorch's fastest CPU form that keeps the
numerics (channels-last tensors, oneDNN convolutions, explicit TF 'SAME' padding):

  stack     eight 3x3 convolutions (5->64, six 64->64, 64->3; dilations 1,1,2,4,8,1,1,1; ReLU),
            MSE loss, forward + backward (the `stack` case of `python -m inpaintjax.bench`)
  train     one DeepFill v2 iteration as inpaintjax.families.deepfill_v2 does it: one generator
            forward; SN-PatchGAN hinge step on [real; composited fake] (fake detached); generator
            step (L1 on both stages + hinge) through the updated discriminator (its parameters
            frozen for that backward); Adam(1e-4, 0.5, 0.999) for both
  infer     generator forward + composite, no autograd

Contextual attention follows generative_inpainting `inpaint_ops.py::contextual_attention`
(per-image loop, 3x3 matching patches at 1/2 scale, the flattened-index diagonal fusion twice,
masked softmax, 4x4 raw patches pasted by a stride-2 transposed convolution, /4), so its FLOPs
match the JAX layer's.

Run: python -m inpaintjax.benchmarks_torch.torch_deepfill --case train --batch 4 --size 256 --repeats 3
Prints one JSON record: median / min / max seconds over the timed repeats after one warm-up.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from inpaintjax.benchmarks_torch.torch_timing import run_cli

CL = torch.channels_last


def same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TF 'SAME' padding (before, after) for one spatial dim."""
    eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


class Conv(nn.Module):
    """TF-'SAME' convolution: symmetric padding inside the conv when it is symmetric."""

    def __init__(self, cin, cout, k, s=1, d=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, 0, d)
        self.k, self.s, self.d = k, s, d

    def forward(self, x):
        (t, b), (l, r) = (same_pads(x.shape[2], self.k, self.s, self.d),
                          same_pads(x.shape[3], self.k, self.s, self.d))
        if t == b and l == r:
            return F.conv2d(x, self.conv.weight, self.conv.bias, self.s, (t, l), self.d)
        return self.conv(F.pad(x, (l, r, t, b)))


class Gated(nn.Module):
    """DeepFill v2 gen_conv: one conv with 2F outputs, act(features) * sigmoid(gates)."""

    def __init__(self, cin, f, k=3, s=1, d=1, act=F.elu):
        super().__init__()
        self.act = act
        self.conv = Conv(cin, f if act is None else 2 * f, k, s, d)

    def forward(self, x):
        y = self.conv(x)
        if self.act is None:
            return y
        a, g = torch.chunk(y, 2, dim=1)
        return self.act(a) * torch.sigmoid(g)


class GatedUp(Gated):
    def forward(self, x):
        return super().forward(F.interpolate(x, scale_factor=2, mode="nearest"))


def _eye_fuse(s, h, w):
    """The `fuse=True` step of generative_inpainting `inpaint_ops.py::contextual_attention` (an
    eye(3) convolution over the flattened row-major indices, then again over the column-major ones)
    on the score matrix s [1, 1, P, Q] (both row-major over h x w)."""
    k = torch.eye(3, dtype=s.dtype).view(1, 1, 3, 3)
    s = F.conv2d(s, k, padding=1)
    s = s.reshape(1, h, w, h, w).permute(0, 2, 1, 4, 3).reshape(1, 1, h * w, h * w)
    s = F.conv2d(s, k, padding=1)
    return s.reshape(1, w, h, w, h).permute(0, 2, 1, 4, 3).reshape(1, 1, h * w, h * w)


def contextual_attention(x, mask_s, scale=10.0):
    """x [B, C, H4, W4] (f = b = x, rate 2), mask_s [1, 1, H4, W4] (1 = hole) -> [B, C, H4, W4]."""
    bsz, c, hh, ww = x.shape
    h, w = hh // 2, ww // 2
    n = h * w
    raw = F.unfold(F.pad(x, (1, 1, 1, 1)), 4, stride=2)      # 4x4 raw patches, stride 2: [B, C*16, n]
    raw = raw.transpose(1, 2).reshape(bsz, n, c, 4, 4)
    xd = F.interpolate(x, size=(h, w), mode="nearest")
    md = F.interpolate(mask_s, size=(h, w), mode="nearest")
    wd = F.unfold(xd, 3, padding=1).transpose(1, 2).reshape(bsz, n, c, 3, 3)
    mm = (F.unfold(md, 3, padding=1).mean(1) == 0).to(x.dtype).view(1, n, 1, 1)
    outs = []
    for i in range(bsz):
        wi = wd[i] / wd[i].flatten(1).norm(dim=1).clamp_min(1e-4).view(n, 1, 1, 1)
        s = F.conv2d(xd[i:i + 1], wi, padding=1)              # [1, Q (bg), h, w (fg P)]
        s = s.reshape(1, 1, n, n).transpose(2, 3)               # [1, 1, P, Q]
        s = _eye_fuse(s, h, w).transpose(2, 3).reshape(1, n, h, w)
        s = s * mm
        a = torch.softmax(s * scale, dim=1) * mm
        outs.append(F.conv_transpose2d(a, raw[i], stride=2, padding=1) / 4.0)
    return torch.cat(outs, 0)


class Generator(nn.Module):
    """DeepFill v2 generator (generative_inpainting `inpaint_model.py::build_inpaint_net`), cnum=48,
    5 input channels."""

    def __init__(self, c=48):
        super().__init__()
        G, U = Gated, GatedUp
        self.coarse = nn.ModuleList([
            G(5, c // 2, 5), G(c // 2, c, 3, 2), G(c, c), G(c, 2 * c, 3, 2), G(2 * c, 2 * c),
            G(2 * c, 2 * c), G(2 * c, 2 * c, d=2), G(2 * c, 2 * c, d=4), G(2 * c, 2 * c, d=8),
            G(2 * c, 2 * c, d=16), G(2 * c, 2 * c), G(2 * c, 2 * c), U(2 * c, c), G(c, c),
            U(c, c // 2), G(c // 2, c // 4), G(c // 4, 3, act=None)])
        self.hallu = nn.ModuleList([
            G(3, c // 2, 5), G(c // 2, c // 2, 3, 2), G(c // 2, c), G(c, c, 3, 2), G(c, 2 * c),
            G(2 * c, 2 * c), G(2 * c, 2 * c, d=2), G(2 * c, 2 * c, d=4), G(2 * c, 2 * c, d=8),
            G(2 * c, 2 * c, d=16)])
        self.pm1 = nn.ModuleList([
            G(3, c // 2, 5), G(c // 2, c // 2, 3, 2), G(c // 2, c), G(c, 2 * c, 3, 2),
            G(2 * c, 2 * c), G(2 * c, 2 * c, act=F.relu)])
        self.pm2 = nn.ModuleList([G(2 * c, 2 * c), G(2 * c, 2 * c)])
        self.dec = nn.ModuleList([
            G(4 * c, 2 * c), G(2 * c, 2 * c), U(2 * c, c), G(c, c), U(c, c // 2),
            G(c // 2, c // 4), G(c // 4, 3, act=None)])

    @staticmethod
    def _run(layers, x):
        for layer in layers:
            x = layer(x)
        return x

    def forward(self, image, mask):
        xin = image * (1 - mask)
        ones = torch.ones_like(mask)
        x = torch.cat([xin, ones, ones * mask], 1).contiguous(memory_format=CL)
        x = self.coarse[0](x)
        for layer in self.coarse[1:6]:
            x = layer(x)
        mask_s = F.interpolate(mask[:1], size=x.shape[2:], mode="nearest")
        x = self._run(self.coarse[6:], x)
        stage1 = torch.tanh(x)
        xnow = (stage1 * mask + xin * (1 - mask)).contiguous(memory_format=CL)
        xh = self._run(self.hallu, xnow)
        xp = self._run(self.pm1, xnow)
        xp = contextual_attention(xp, mask_s).contiguous(memory_format=CL)
        xp = self._run(self.pm2, xp)
        x = self._run(self.dec, torch.cat([xh, xp], 1))
        return stage1, torch.tanh(x)


class SNPatchGAN(nn.Module):
    """SN-PatchGAN (generative_inpainting `inpaint_model.py::build_sn_patch_gan_discriminator`):
    six 5x5 stride-2 SN convs, LeakyReLU(0.2) after each, one power iteration per forward with
    gradients through it (as the TF original)."""

    def __init__(self, cin=4, c=64):
        super().__init__()
        chans = [cin, c, 2 * c, 4 * c, 4 * c, 4 * c, 4 * c]
        self.convs = nn.ModuleList([Conv(chans[i], chans[i + 1], 5, 2) for i in range(6)])
        for i, conv in enumerate(self.convs):
            self.register_buffer(f"u{i}", F.normalize(torch.randn(1, chans[i + 1]), dim=1))

    def forward(self, x):
        for i, conv in enumerate(self.convs):
            w = conv.conv.weight                                  # [out, in, k, k]
            wm = w.reshape(w.shape[0], -1).t()                    # [k*k*in, out]
            u = getattr(self, f"u{i}")
            v = F.normalize(u @ wm.t(), dim=1, eps=1e-12)
            u2 = F.normalize(v @ wm, dim=1, eps=1e-12)
            sigma = (v @ wm @ u2.t()).squeeze()
            if self.training:
                self._buffers[f"u{i}"] = u2.detach()
            (t, b), (l, r) = same_pads(x.shape[2], 5, 2, 1), same_pads(x.shape[3], 5, 2, 1)
            x = F.leaky_relu(F.conv2d(F.pad(x, (l, r, t, b)), w / sigma, conv.conv.bias, 2), 0.2)
        return x.flatten(1)


def make_batch(batch, size):
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    mask = torch.zeros(1, 1, size, size)
    mask[..., size // 4: size // 2, size // 4: 3 * size // 4] = 1
    return image.contiguous(memory_format=CL), mask.expand(batch, 1, size, size).contiguous(
        memory_format=CL)


def deepfill_train(batch, size, cnum=48, d_cnum=64):
    gen = Generator(cnum).to(memory_format=CL)
    dis = SNPatchGAN(4, d_cnum).to(memory_format=CL)
    opt_g = torch.optim.Adam(gen.parameters(), 1e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(dis.parameters(), 1e-4, betas=(0.5, 0.999))
    image, mask = make_batch(batch, size)

    def step():
        s1, s2 = gen(image, mask)
        fake = s2 * mask + image * (1 - mask)
        dis.requires_grad_(True)
        d_in = torch.cat([torch.cat([image, mask], 1), torch.cat([fake.detach(), mask], 1)], 0)
        pos, neg = torch.chunk(dis(d_in.contiguous(memory_format=CL)), 2)
        d_loss = 0.5 * F.relu(1 - pos).mean() + 0.5 * F.relu(1 + neg).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        dis.requires_grad_(False)
        neg = dis(torch.cat([fake, mask], 1).contiguous(memory_format=CL))
        g_loss = (image - s1).abs().mean() + (image - s2).abs().mean() - neg.mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        return float(g_loss.detach())
    return step


def deepfill_infer(batch, size, cnum=48):
    gen = Generator(cnum).to(memory_format=CL).eval()
    image, mask = make_batch(batch, size)

    def run():
        with torch.inference_mode():
            _, s2 = gen(image, mask)
            return float((s2 * mask + image * (1 - mask)).sum())
    return run


def stack_train(batch, size):
    chans, dil = [5, 64, 64, 64, 64, 64, 64, 64, 3], [1, 1, 2, 4, 8, 1, 1, 1]
    g = torch.Generator().manual_seed(0)
    ws = [(torch.randn(chans[i + 1], chans[i], 3, 3, generator=g) * (2 / (9 * chans[i])) ** 0.5)
          .contiguous(memory_format=CL).requires_grad_() for i in range(8)]
    x = torch.randn(batch, 5, size, size, generator=g).contiguous(memory_format=CL)
    tgt = torch.zeros(batch, 3, size, size).contiguous(memory_format=CL)

    def step():
        h = x
        for i, w in enumerate(ws):
            h = F.conv2d(h, w, padding=dil[i], dilation=dil[i])
            if i < 7:
                h = F.relu(h)
        loss = ((h - tgt) ** 2).mean()
        for w in ws:
            w.grad = None
        loss.backward()
        return float(loss.detach())
    return step


def main(argv=None):
    def extra(p):
        p.add_argument("--cnum", type=int, default=48)
        p.add_argument("--d-cnum", type=int, default=64)
    run_cli(__doc__.splitlines()[0], {
        "stack": lambda a: stack_train(a.batch, a.size),
        "train": lambda a: deepfill_train(a.batch, a.size, a.cnum, a.d_cnum),
        "infer": lambda a: deepfill_infer(a.batch, a.size, a.cnum),
    }, extra, argv=argv)

if __name__ == "__main__":
    main()
