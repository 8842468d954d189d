"""A NumPy port of the reference PatchMatch inpainting (vacancy/PyPatchMatch @ee63e2a, MIT: the
C++ in csrc/inpaint.cpp, nnf.cpp, masked_image.cpp), written for the tests from the C++ as a
scalar, sequential program: every loop, bound and integer division as the C++ has it, including
its long-double distance arithmetic. Only the random numbers differ (NumPy's generator stands in
for libc rand()). Images are uint8 [h,w,3] with a bool hole mask [h,w]; no global mask.
"""

import numpy as np

DISTANCE_SCALE = 65535
SSD_SCALE = 9 * 255 * 255
KERNEL = (1, 5, 10, 10, 5, 1)


def similarity_table():
    base = [1.0, 0.99, 0.96, 0.83, 0.38, 0.11, 0.02, 0.005, 0.0006, 0.0001, 0]
    length = DISTANCE_SCALE + 1
    out = np.zeros(length)
    for i in range(length):
        t = i / length
        j = int(100 * t)
        k = j + 1
        vj = base[j] if j < 11 else 0
        vk = base[k] if k < 11 else 0
        out[i] = vj + (100 * t - j) * (vk - vj)
    return out


def gradients(image):
    """(grady, gradx) uint8 as MaskedImage::compute_image_gradients: zero on the border."""
    h, w = image.shape[:2]
    gy = np.zeros((h, w, 3), np.int64)
    gx = np.zeros((h, w, 3), np.int64)
    im = image.astype(np.int64)
    for i in range(1, h - 1):
        for j in range(1, w - 1):
            for c in range(3):
                gy[i, j, c] = (im[i + 1, j, c] // 2 - im[i - 1, j, c] // 2) + 128
                gx[i, j, c] = (im[i, j + 1, c] // 2 - im[i, j - 1, c] // 2) + 128
    return gy, gx


class Masked:
    """MaskedImage: image uint8 [h,w,3], mask bool [h,w] (True = masked), cached gradients."""

    def __init__(self, image, mask):
        self.image = np.asarray(image, np.uint8).copy()
        self.mask = np.asarray(mask, bool).copy()
        self._grads = None

    @property
    def shape(self):
        return self.mask.shape

    def grads(self):
        if self._grads is None:
            self._grads = gradients(self.image)
        return self._grads


def distance(source, ys, xs, target, yt, xt, p):
    """distance_masked_images: the reference's patch distance, long double as in the C++."""
    sgy, sgx = source.grads()
    tgy, tgx = target.grads()
    sh, sw = source.shape
    th, tw = target.shape
    dist = np.longdouble(0)
    wsum = np.longdouble(0)
    for dy in range(-p, p + 1):
        yys, yyt = ys + dy, yt + dy
        if yys <= 0 or yys >= sh - 1 or yyt <= 0 or yyt >= th - 1:
            dist += np.longdouble(SSD_SCALE) * (2 * p + 1)
            wsum += 2 * p + 1
            continue
        for dx in range(-p, p + 1):
            xxs, xxt = xs + dx, xt + dx
            wsum += 1
            # the C++ tests the target column against the source width (equal sizes here)
            if xxs <= 0 or xxs >= sw - 1 or xxt <= 0 or xxt >= sw - 1:
                dist += SSD_SCALE
                continue
            if source.mask[yys, xxs] or target.mask[yyt, xxt]:
                dist += SSD_SCALE
                continue
            ssd = 0
            for c in range(3):
                ssd += (int(source.image[yys, xxs, c]) - int(target.image[yyt, xxt, c])) ** 2
                ssd += (int(sgx[yys, xxs, c]) - int(tgx[yyt, xxt, c])) ** 2
                ssd += (int(sgy[yys, xxs, c]) - int(tgy[yyt, xxt, c])) ** 2
            dist += ssd
    dist /= np.longdouble(SSD_SCALE)
    res = int(np.longdouble(DISTANCE_SCALE) * dist / wsum)
    if res < 0 or res > DISTANCE_SCALE:
        return DISTANCE_SCALE
    return res


def downsample(m):
    h, w = m.shape
    nh, nw = h // 2, w // 2
    image = np.zeros((nh, nw, 3), np.uint8)
    mask = np.zeros((nh, nw), bool)
    for y in range(0, h - 1, 2):
        for x in range(0, w - 1, 2):
            r = g = b = ksum = 0
            for dy in range(-2, 4):
                for dx in range(-2, 4):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w and not m.mask[yy, xx]:
                        k = KERNEL[2 + dy] * KERNEL[2 + dx]
                        v = m.image[yy, xx].astype(np.int64)
                        r, g, b = r + v[0] * k, g + v[1] * k, b + v[2] * k
                        ksum += k
            if ksum > 0:
                image[y // 2, x // 2] = (r // ksum, g // ksum, b // ksum)
                mask[y // 2, x // 2] = False
            else:
                mask[y // 2, x // 2] = True
    return Masked(image, mask)


def upsample(m, nh, nw):
    h, w = m.shape
    image = np.zeros((nh, nw, 3), np.uint8)
    mask = np.zeros((nh, nw), bool)
    for y in range(nh):
        for x in range(nw):
            yy, xx = y * h // nh, x * w // nw
            if m.mask[yy, xx]:
                mask[y, x] = True
            else:
                image[y, x] = m.image[yy, xx]
    return Masked(image, mask)


def contains_mask(m, y, x, p):
    h, w = m.shape
    return bool(m.mask[max(0, y - p):min(h, y + p + 1), max(0, x - p):min(w, x + p + 1)].any())


def pyramid(m, p):
    levels = [m]
    while levels[-1].shape[0] > p and levels[-1].shape[1] > p:
        levels.append(downsample(levels[-1]))
    return levels


def em_schedule(level):
    return 1 + 2 * level, min(7, 1 + level)


def scaled_field(other, h, w):
    """_initialize_field_from's offsets (doubles, as the C++): int [h,w,2] from a coarser field."""
    oh, ow = other.shape[:2]
    fi, fj = h / oh, w / ow
    out = np.zeros((h, w, 2), np.int64)
    for i in range(h):
        for j in range(w):
            ilow = int(min(i / fi, oh - 1))
            jlow = int(min(j / fj, ow - 1))
            v = other[ilow, jlow]
            out[i, j] = (int(v[0] * fi), int(v[1] * fj))
    return out


class NNF:
    """NearestNeighborField: field int [h,w,3] = (y target, x target, distance)."""

    def __init__(self, source, target, p, rng, other=None, max_retry=20):
        self.source, self.target, self.p, self.rng = source, target, p, rng
        self.field = np.zeros(source.shape + (3,), np.int64)
        if other is None:
            self.randomize(max_retry, reset=True)
        else:
            self.init_from(other, max_retry)

    def d(self, y, x, yt, xt):
        return distance(self.source, y, x, self.target, yt, xt, self.p)

    def randomize(self, max_retry, reset):
        h, w = self.source.shape
        th, tw = self.target.shape
        for i in range(h):
            for j in range(w):
                dist = DISTANCE_SCALE if reset else self.field[i, j, 2]
                if dist < DISTANCE_SCALE:
                    continue
                it = jt = 0
                for _ in range(max_retry):
                    it, jt = int(self.rng.integers(th)), int(self.rng.integers(tw))
                    dist = self.d(i, j, it, jt)
                    if dist < DISTANCE_SCALE:
                        break
                self.field[i, j] = (it, jt, dist)

    def init_from(self, other, max_retry):
        h, w = self.source.shape
        scaled = scaled_field(other.field, h, w)
        for i in range(h):
            for j in range(w):
                y, x = scaled[i, j]
                self.field[i, j] = (y, x, self.d(i, j, y, x))
        self.randomize(max_retry, reset=False)

    def set_identity(self, y, x):
        self.field[y, x] = (y, x, 0)

    def minimize(self, passes):
        h, w = self.source.shape
        for _ in range(passes):
            for i in range(h):
                for j in range(w):
                    if self.field[i, j, 2] > 0:
                        self.link(i, j, +1)
            for i in range(h - 1, -1, -1):
                for j in range(w - 1, -1, -1):
                    if self.field[i, j, 2] > 0:
                        self.link(i, j, -1)

    def link(self, y, x, direction):
        h, w = self.source.shape
        th, tw = self.target.shape
        f = self.field
        if 0 <= y - direction < h:
            yp, xp = f[y - direction, x, 0] + direction, f[y - direction, x, 1]
            dp = self.d(y, x, yp, xp)
            if dp < f[y, x, 2]:
                f[y, x] = (yp, xp, dp)
        if 0 <= x - direction < w:
            yp, xp = f[y, x - direction, 0], f[y, x - direction, 1] + direction
            dp = self.d(y, x, yp, xp)
            if dp < f[y, x, 2]:
                f[y, x] = (yp, xp, dp)
        scale = (min(th, tw) - 1) // 2
        while scale > 0:
            yp = f[y, x, 0] + int(self.rng.integers(2 * scale + 1)) - scale
            xp = f[y, x, 1] + int(self.rng.integers(2 * scale + 1)) - scale
            yp, xp = min(max(yp, 0), th - 1), min(max(xp, 0), tw - 1)
            dp = self.d(y, x, yp, xp)
            if dp < f[y, x, 2]:
                f[y, x] = (yp, xp, dp)
            scale //= 2


def expectation(field, source2target, vote, source, upscaled, p, table):
    """_expectation_step: add the weighted votes of one field (int [h,w,3]) into vote [H,W,4]."""
    sh, sw = field.shape[:2]
    th, tw = sh, sw  # source and target of a field have the level's size
    for i in range(sh):
        for j in range(sw):
            yp, xp, dp = (int(v) for v in field[i, j])
            wgt = table[dp]
            for di in range(-p, p + 1):
                for dj in range(-p, p + 1):
                    ys, xs, yt, xt = i + di, j + dj, yp + di, xp + dj
                    if not (0 <= ys < sh and 0 <= xs < sw):
                        continue
                    if not (0 <= yt < th and 0 <= xt < tw):
                        continue
                    if not source2target:
                        ys, yt, xs, xt = yt, ys, xt, xs
                    pairs = ([(2 * ys + uy, 2 * xs + ux, 2 * yt + uy, 2 * xt + ux)
                              for uy in range(2) for ux in range(2)] if upscaled
                             else [(ys, xs, yt, xt)])
                    for a, b, c, d in pairs:
                        if source.mask[a, b]:
                            continue
                        vote[c, d, :3] += source.image[a, b].astype(np.float64) * wgt
                        vote[c, d, 3] += wgt


def maximization(target, vote):
    """_maximization_step: cvRound (half to even) and saturate; no votes: unmasked, kept."""
    h, w = target.shape
    for i in range(h):
        for j in range(w):
            if vote[i, j, 3] > 0:
                target.image[i, j] = np.clip(np.rint(vote[i, j, :3] / vote[i, j, 3]), 0, 255)
            else:
                target.mask[i, j] = False


def inpaint(image, hole, p, seed=0):
    """The whole reference algorithm (sequential); returns uint8 [h,w,3] before compositing."""
    rng = np.random.default_rng(seed)
    table = similarity_table()
    pyr = pyramid(Masked(image, hole), p)
    s2t = t2s = target = None
    for level in range(len(pyr) - 1, -1, -1):
        source = pyr[level]
        if level == len(pyr) - 1:
            target = Masked(source.image, np.zeros(source.shape, bool))
            s2t = NNF(source, target, p, rng)
            t2s = NNF(target, source, p, rng)
        else:
            s2t = NNF(source, target, p, rng, other=s2t)
            t2s = NNF(target, source, p, rng, other=t2s)
        n_em, passes = em_schedule(level)
        new_target = None
        for it in range(n_em):
            if it:
                s2t.target = new_target
                t2s.source = new_target
                target = new_target
            h, w = source.shape
            for i in range(h):
                for j in range(w):
                    if not contains_mask(source, i, j, p):
                        s2t.set_identity(i, j)
                        t2s.set_identity(i, j)
            s2t.minimize(passes)
            t2s.minimize(passes)
            upscaled = level >= 1 and it == n_em - 1
            if upscaled:
                new_source = pyr[level - 1]
                new_target = upsample(target, *new_source.shape)
            else:
                new_source = pyr[level]
                new_target = Masked(target.image, target.mask)
            vote = np.zeros(new_target.shape + (4,))
            expectation(s2t.field, True, vote, new_source, upscaled, p, table)
            expectation(t2s.field, False, vote, new_source, upscaled, p, table)
            maximization(new_target, vote)
        target = new_target
    return target.image
