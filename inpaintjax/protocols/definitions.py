"""Evaluation protocols as data: which masks, which image preparation, which metric definitions, which
grouping and which table make one paper's numbers (`Protocol`), and the registry of them.

A protocol is a frozen value built from four small records:

- `Metric(name, measure, options, colour, scale)`: one column. `measure` names a definition in
  `inpaintjax.protocols.measures` (`ssim`, `psnr`, `l1`, `mae_relative`, `mae_masked`, `lpips`,
  `fid`, `pids`, `uids`, `is`), `options` its settings (e.g. LaMa's SSIM: `padding="zero"`),
  `colour` "rgb" or "grey" (scikit-image's rgb2gray first; the per-image measures only, `measures.
  PER_IMAGE`: "grey" on `lpips`, `fid`, `pids`, `uids` or `is` is refused), `scale` a factor for
  printing (x100).
- `Binning(edges, rule, border_px)`: the groups reported beside the total, by the mask's hole area.
  rule "lama": [lo, hi) bins found with `searchsorted(edges, area, 'right') - 1`, an area equal to the
  last edge in the last bin (LaMa's evaluator.py); rule "pconv": (lo, hi] buckets, other areas only
  in the total; `border_px` splits each bucket into masks with a hole pixel less than that many
  pixels from the border ("B") and the others ("N/B"), distances scaled to `border_reference` pixels
  of image side per axis (`touches_border`: `inpaintjax.masks.border_distance`, the rule of
  `group_mask_folder`).
- `Preparation(size, resize, crop)`: how `--write-inputs` makes the protocol's images from a folder
  of photographs (resize the short side to `size` with PIL's bicubic filter, then a centre crop).
- `PublishedRow`: a number published by a paper's or a reproduction's authors, with the file and
  commit it was read from; only numbers verified in their source are registered.

Built-in protocols: `lama`, `comodgan`, `mat`, `pconv`, `edgeconnect`, `mmagic` (docs/protocols.md).
A user adds one with `register(Protocol(...))`, or from a file with `load_protocol_file(path)`
(`inpaintjax evaluate --protocol-file FILE`): a Python file defining `PROTOCOLS = [Protocol(...), ...]`
(or module-level `Protocol` values), or a JSON file holding one protocol's fields (a list of them).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from inpaintjax.protocols import measures

COLOURS = ("rgb", "grey")
BIN_RULES = ("lama", "pconv")
LAYOUTS = ("rows", "lama_tsv")
INCEPTION_RESIZES = ("pytorch", "tf1", "clean")


@dataclass(frozen=True)
class Metric:
    """One column of a protocol's table (see the module docstring)."""
    name: str
    measure: str
    options: Mapping[str, Any] = field(default_factory=dict)
    colour: str = "rgb"
    scale: float = 1.0
    higher_is_better: bool = True
    description: str = ""

    def __post_init__(self):
        if self.colour not in COLOURS:
            raise ValueError(f"metric {self.name!r}: colour {self.colour!r} is not one of {', '.join(COLOURS)}")
        try:
            measures.check_options(self.measure, dict(self.options))
        except ValueError as e:
            raise ValueError(f"metric {self.name!r}: {e}") from None
        if self.colour == "grey" and self.measure not in measures.PER_IMAGE:
            raise ValueError(f"metric {self.name!r}: colour 'grey' applies to the per-image measures "
                             f"({', '.join(measures.PER_IMAGE)}) only; measure {self.measure!r} scores the RGB "
                             f"images (its network takes 3 channels): leave colour at 'rgb'")
        object.__setattr__(self, "options", dict(self.options))


@dataclass(frozen=True)
class Binning:
    """Hole-area groups (see the module docstring). No edges: the total only."""
    edges: Tuple[float, ...] = ()
    rule: str = "lama"
    border_px: Optional[int] = None
    border_reference: int = 512

    def __post_init__(self):
        if self.rule not in BIN_RULES:
            raise ValueError(f"binning rule {self.rule!r} is not one of {', '.join(BIN_RULES)}")
        e = tuple(float(x) for x in self.edges)
        if any(b <= a for a, b in zip(e, e[1:])):
            raise ValueError(f"binning edges must increase, got {e}")
        object.__setattr__(self, "edges", e)

    @property
    def bins(self) -> int:
        return max(len(self.edges) - 1, 0)

    def bin_names(self) -> Tuple[str, ...]:
        """'0-10%', '10-20%', ... (LaMa's names: whole percents where the edges allow)."""
        def pct(x):
            v = round(100 * x, 6)
            return f"{v:.0f}" if float(v).is_integer() else f"{v:g}"
        return tuple(f"{pct(lo)}-{pct(hi)}%" for lo, hi in zip(self.edges, self.edges[1:]))

    def bin_index(self, area) -> np.ndarray:
        """Bin of each hole area (fraction of the image) -> int64 [N], -1 where in no bin."""
        a = np.atleast_1d(np.asarray(area, np.float64))
        if not self.bins:
            return np.full(a.shape, -1, np.int64)
        e = np.asarray(self.edges)
        if self.rule == "lama":
            idx = np.searchsorted(e, a, side="right") - 1
            idx[idx == self.bins] = self.bins - 1  # LaMa: an area equal to the last edge goes in the last bin
            idx[(a < e[0]) | (a > e[-1])] = -1
            return idx.astype(np.int64)
        idx = np.full(a.shape, -1, np.int64)
        for i, (lo, hi) in enumerate(zip(e, e[1:])):
            idx[(a > lo) & (a <= hi)] = i
        return idx

    def groups_of(self, mask: np.ndarray) -> Tuple[str, ...]:
        """The group names of one mask [H, W] (1 = hole), besides 'total'."""
        area = float(np.mean(mask > 0.5))
        i = int(self.bin_index(area)[0])
        if i < 0:
            return ()
        name = self.bin_names()[i]
        if self.border_px is None:
            return (name,)
        return (f"{name} {'B' if touches_border(mask, self.border_px, self.border_reference) else 'N/B'}",)

    def group_names(self) -> Tuple[str, ...]:
        names = self.bin_names()
        if self.border_px is None:
            return names
        return tuple(f"{n} {s}" for n in names for s in ("N/B", "B"))


def touches_border(mask: np.ndarray, border_px: float, reference: int = 512) -> bool:
    """True when a hole pixel lies less than `border_px` pixels of a `reference`-sized image from the
    border: PConv's "B" group (holes at least 50 pixels from the border of a 512x512 image make
    'N/B'). The distance is `inpaintjax.masks.border_distance`'s, the one rule of the mask-folder
    grouping: each pixel's distance to the nearest edge scaled to `reference` per axis (rows by
    reference / H, columns by reference / W)."""
    from inpaintjax.masks.folders import border_distance
    return bool(border_distance(mask, reference) < border_px)


@dataclass(frozen=True)
class Preparation:
    """How `--write-inputs` turns a photograph into a protocol image."""
    size: int
    resize: str = "bicubic"
    crop: str = "center"

    def __post_init__(self):
        if self.resize != "bicubic" or self.crop != "center":
            raise ValueError(f"preparation: only resize='bicubic' (short side to size) and crop='center' are "
                             f"implemented, got resize={self.resize!r}, crop={self.crop!r}")


@dataclass(frozen=True)
class PublishedRow:
    """A published result, printed beside ours; `values` are keyed by this protocol's metric names."""
    method: str
    dataset: str
    masks: str
    values: Mapping[str, float]
    source: str
    note: str = ""


@dataclass(frozen=True)
class Protocol:
    """One paper's evaluation protocol (see the module docstring)."""
    name: str
    title: str
    image_size: int
    metrics: Tuple[Metric, ...]
    mask_sets: Tuple[str, ...] = ()
    masks_note: str = ""
    binning: Binning = Binning()
    preparation: Optional[Preparation] = None
    inception_resize: str = "pytorch"
    layout: str = "rows"
    derived: Tuple[str, ...] = ()
    sources: Tuple[str, ...] = ()
    published: Tuple[PublishedRow, ...] = ()
    description: str = ""

    def __post_init__(self):
        object.__setattr__(self, "metrics", tuple(m if isinstance(m, Metric) else Metric(**m) for m in self.metrics))
        if isinstance(self.binning, Mapping):
            object.__setattr__(self, "binning", Binning(**self.binning))
        if isinstance(self.preparation, Mapping):
            object.__setattr__(self, "preparation", Preparation(**self.preparation))
        object.__setattr__(self, "published", tuple(p if isinstance(p, PublishedRow) else PublishedRow(**p)
                                                    for p in self.published))
        for key in ("mask_sets", "sources", "derived"):
            object.__setattr__(self, key, tuple(getattr(self, key)))
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"protocol {self.name!r}: metric names must be unique and non-empty, got {names}")
        if self.inception_resize not in INCEPTION_RESIZES:
            raise ValueError(f"protocol {self.name!r}: inception_resize {self.inception_resize!r} is not one of "
                             f"{', '.join(INCEPTION_RESIZES)}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"protocol {self.name!r}: layout {self.layout!r} is not one of {', '.join(LAYOUTS)}")
        for d in self.derived:
            if d not in DERIVED:
                raise ValueError(f"protocol {self.name!r}: unknown derived score {d!r}; choose from {', '.join(DERIVED)}")
        for row in self.published:
            bad = [k for k in row.values if k not in names]
            if bad:
                raise ValueError(f"protocol {self.name!r}: published row {row.method!r} names unknown metrics {bad}")

    @property
    def needs_mask(self) -> bool:
        """Whether scoring needs the mask of each image (grouping, or a hole-only measure)."""
        return bool(self.binning.bins) or any(m.measure == "mae_masked" for m in self.metrics)

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(f"protocol {self.name!r} has no metric {name!r}; it has {', '.join(m.name for m in self.metrics)}")


def lpips_fid100_f1(results: Mapping[str, Mapping[str, float]]) -> float:
    """LaMa's integral score: the F1 of (1 - LPIPS) and max(0, 100 - FID) / 100 over the totals
    (saicinpainting/evaluation/evaluator.py)."""
    neg_lpips = 1.0 - results["lpips"]["mean"]
    fid_rel = max(0.0, 100.0 - results["fid"]["mean"]) / 100.0
    return 2 * neg_lpips * fid_rel / (neg_lpips + fid_rel + 1e-3)


DERIVED = {"lpips_fid100_f1": lpips_fid100_f1}
DERIVED_NEEDS = {"lpips_fid100_f1": ("lpips", "fid")}

_LAMA = "advimman/lama @ 786f5936b27fb3dacd2b1ad799e4de968ea697e7"
_MAT = "fenglinglwb/MAT @ d273d891ecdad2e1df106516423a75bc45b2d800"
_COMOD = "zsyzzsoft/co-mod-gan @ c8b9ffe30c950dfdfb9e86652a27b6e72304b3d5"
_EC = "knazeri/edge-connect @ 3142579785c5c8cc92ad655616d40f4f52fc7ec1"
_MMAGIC = "open-mmlab/mmagic @ 0a560bba9b79ebe78574e1d4cbbdd0e798e63568"

_VALID_SSIM = dict(window="gaussian", size=11, sigma=1.5, padding="valid")
_PCONV_EDGES = (0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)

LAMA = Protocol(
    name="lama",
    title="LaMa (Suvorov et al., WACV 2022): bin/evaluate_predicts.py",
    image_size=256,
    mask_sets=("lama_thin_256", "lama_medium_256", "lama_thick_256",
               "lama_thin_512", "lama_medium_512", "lama_thick_512"),
    masks_note="Places 512x512 uses *_512 (narrow = thin, medium, wide = thick), CelebA-HQ 256x256 uses *_256; "
               "LaMa fixes no seed, so its own test masks differ from ours draw by draw",
    binning=Binning(edges=tuple(np.linspace(0, 1, 11)), rule="lama"),
    preparation=Preparation(256),
    metrics=(
        Metric("ssim", "ssim", dict(window="gaussian", size=11, sigma=1.5, padding="zero"),
               description="SSIM, 11x11 Gaussian (sigma 1.5), zero padding, whole image"),
        Metric("lpips", "lpips", dict(net="vgg"), higher_is_better=False, description="LPIPS v0.1, VGG"),
        Metric("fid", "fid", dict(covariance="unbiased"), higher_is_better=False,
               description="FID, pytorch-fid (bilinear resize to 299)"),
    ),
    inception_resize="pytorch",
    layout="lama_tsv",
    derived=("lpips_fid100_f1",),
    sources=(f"{_LAMA}: bin/evaluate_predicts.py, saicinpainting/evaluation/evaluator.py, "
             "saicinpainting/evaluation/losses/base_loss.py, saicinpainting/evaluation/losses/ssim.py",),
    description="SSIM, LPIPS-VGG and FID over the whole image, in 10% hole-area bins and in total.",
)

COMODGAN = Protocol(
    name="comodgan",
    title="CoModGAN (Zhao et al., ICLR 2021): metrics/frechet_inception_distance.py, "
          "inception_discriminative_score.py",
    image_size=512,
    mask_sets=("comodgan_512",),
    masks_note="training/mask_generator.py RandomMask; Places2 val (36,500 images) or FFHQ (10,000)",
    preparation=Preparation(512),
    metrics=(
        Metric("fid", "fid", dict(covariance="unbiased"), higher_is_better=False),
        Metric("pids", "pids", scale=100.0, description="P-IDS (%)"),
        Metric("uids", "uids", scale=100.0, description="U-IDS (%)"),
    ),
    inception_resize="tf1",
    sources=(f"{_COMOD}: metrics/inception_discriminative_score.py",),
    description="FID, P-IDS and U-IDS of the inpainted images against their originals, 512x512.",
)

MAT_PUBLISHED = tuple(
    PublishedRow(method, "Places365 512x512 (val)", masks, dict(fid=fid, pids=pids, uids=uids),
                 f"{_MAT}: README.md", note=f"training data {data}")
    for method, data, small, large in (
        ("MAT", "8M", (0.78, 31.72, 43.71), (1.96, 23.42, 38.34)),
        ("MAT", "1.8M", (1.07, 27.42, 41.93), (2.90, 19.03, 35.36)),
        ("CoModGAN", "8M", (1.10, 26.95, 41.88), (2.92, 19.64, 35.78)),
        ("LaMa-Big", "4.5M", (0.99, 22.79, 40.58), (2.97, 13.09, 32.39)))
    for masks, (fid, pids, uids) in (("mat_small_512", small), ("mat_large_512", large)))

MAT = Protocol(
    name="mat",
    title="MAT (Li et al., CVPR 2022): evaluatoin/cal_fid_pids_uids.py, cal_lpips.py, cal_psnr_ssim_l1.py",
    image_size=512,
    mask_sets=("mat_large_512", "mat_small_512", "mat_large_256", "mat_small_256"),
    masks_note="datasets/mask_generator_512.py (large) and mask_generator_512_small.py (small); CelebA-HQ 256 "
               "uses the *_256 sets",
    preparation=Preparation(512),
    metrics=(
        Metric("fid", "fid", dict(covariance="biased"), higher_is_better=False,
               description="FID with the biased covariance (StyleGAN2-ADA's FeatureStats)"),
        Metric("pids", "pids", scale=100.0, description="P-IDS (%)"),
        Metric("uids", "uids", scale=100.0, description="U-IDS (%)"),
        Metric("lpips", "lpips", dict(net="alex"), higher_is_better=False, description="LPIPS v0.1, AlexNet"),
        Metric("psnr", "psnr"),
        Metric("ssim", "ssim", _VALID_SSIM, description="SSIM, Gaussian 11/1.5, 5-pixel border cropped"),
        Metric("l1", "l1", higher_is_better=False, description="mean |a - b| on [0, 1]"),
    ),
    inception_resize="tf1",
    sources=(f"{_MAT}: evaluatoin/cal_fid_pids_uids.py, evaluatoin/cal_lpips.py, evaluatoin/cal_psnr_ssim_l1.py",),
    published=MAT_PUBLISHED,
    description="FID, P-IDS, U-IDS, LPIPS-Alex, PSNR, SSIM and L1 over the whole image, 512x512.",
)

PCONV = Protocol(
    name="pconv",
    title="Partial Convolutions (Liu et al., ECCV 2018), Table 1",
    image_size=512,
    masks_note="the NVIDIA Irregular Mask Dataset (testing_mask_dataset, white = hole) or any mask folder; "
               "grouped by the measured hole ratio, with and without holes near the border",
    binning=Binning(edges=_PCONV_EDGES, rule="pconv", border_px=50, border_reference=512),
    preparation=Preparation(512),
    metrics=(
        Metric("l1", "l1", scale=100.0, higher_is_better=False, description="mean |a - b| on [0, 1], in %"),
        Metric("psnr", "psnr"),
        Metric("ssim", "ssim", _VALID_SSIM, description="SSIM, Gaussian 11/1.5, windows inside the image"),
        Metric("is", "is", dict(splits=10), description="Inception Score of the outputs (10 splits)"),
    ),
    inception_resize="tf1",
    sources=("arXiv:1804.07723, Table 1 and section 4 (the paper names no evaluation code)",),
    description="l1 (%), PSNR, SSIM and IS in six hole-ratio buckets, each with (B) and without (N/B) "
                "holes within 50 px of the border.",
)

EDGECONNECT = Protocol(
    name="edgeconnect",
    title="EdgeConnect (Nazeri et al., 2019): scripts/metrics.py",
    image_size=256,
    masks_note="the NVIDIA Irregular Mask Dataset (white = hole), grouped by the measured hole ratio",
    binning=Binning(edges=_PCONV_EDGES, rule="pconv"),
    preparation=Preparation(256),
    metrics=(
        Metric("psnr", "psnr", colour="grey", description="PSNR of the grey images, data range 1"),
        Metric("ssim", "ssim", dict(window="uniform", size=51, padding="valid", sample_covariance=True),
               colour="grey", description="skimage SSIM, 51x51 uniform window, grey images"),
        Metric("mae", "mae_relative", colour="grey", higher_is_better=False,
               description="relative MAE, sum|a - b| / sum(a + b), grey images"),
        Metric("fid", "fid", dict(covariance="unbiased"), higher_is_better=False,
               description="FID with pytorch-fid's Inception (EdgeConnect's own used torchvision's ImageNet "
                           "weights: not comparable)"),
    ),
    sources=(f"{_EC}: scripts/metrics.py, scripts/fid_score.py",),
    description="PSNR, SSIM (51x51 uniform window) and relative MAE on grey images, FID, per mask ratio.",
)

_MM_SRC = {
    "DeepFillv2": "configs/deepfillv2/README.md (last changed in cdef630ae5a566bc044f42660ec2756a1398bed7)",
    "PConv": "configs/partial_conv/README.md (last changed in 439f906c585f22e721fa266db70f6355427558e4)",
    "DeepFillv1": "configs/deepfillv1/README.md (last changed in cdef630ae5a566bc044f42660ec2756a1398bed7)",
    "Global&Local": "configs/global_local/README.md (last changed in 439f906c585f22e721fa266db70f6355427558e4)",
}
MMAGIC_PUBLISHED = tuple(
    PublishedRow(method, dataset, masks, dict(l1=l1v, psnr=p, ssim=s), f"{_MMAGIC}: {_MM_SRC[method]}",
                 note=note)
    for method, masks, note, rows in (
        ("DeepFillv2", "free-form", "", (("Places365-val 256x256", 8.635, 22.398, 0.815),
                                         ("CelebA-val 256x256", 5.411, 25.721, 0.871))),
        ("PConv", "free-form", "stage 2", (("Places365-val 256x256", 8.776, 22.762, 0.801),
                                           ("CelebA-val 256x256", 5.990, 25.404, 0.853))),
        ("DeepFillv1", "square bbox", "", (("Places365-val 256x256", 11.019, 23.429, 0.862),
                                           ("CelebA-val 256x256", 6.677, 26.878, 0.911))),
        ("Global&Local", "square bbox", "", (("Places365-val 256x256", 11.164, 23.152, 0.862),
                                             ("CelebA-val 256x256", 6.678, 26.780, 0.904))))
    for dataset, l1v, p, s in rows)

MMAGIC = Protocol(
    name="mmagic",
    title="mmagic (OpenMMLab) inpainting configs: MAE(mask_key='mask', scaling=100), PSNR, SSIM",
    image_size=256,
    masks_note="mmagic draws its test masks on the fly (free-form for DeepFill v2 / PConv, a square box for "
               "DeepFill v1 / Global&Local); bring a mask folder",
    preparation=Preparation(256),
    metrics=(
        Metric("l1", "mae_masked", scale=100.0, higher_is_better=False,
               description="hole MAE on [0, 1] x 100: sum|a - b| * mask / (sum(mask) * C)"),
        Metric("psnr", "psnr", description="PSNR, whole image"),
        Metric("ssim", "ssim", _VALID_SSIM, description="SSIM per channel (cv2 Gaussian 11/1.5, 5-pixel crop), "
                                                        "whole image"),
    ),
    sources=(f"{_MMAGIC}: configs/_base_/datasets/places.py, celeba.py, mmagic/evaluation/metrics/mae.py, "
             "psnr.py, ssim.py",),
    published=MMAGIC_PUBLISHED,
    description="Hole MAE x100, whole-image PSNR and SSIM, as mmagic reports its inpainting reproductions.",
)

PROTOCOLS: Dict[str, Protocol] = {p.name: p for p in (LAMA, COMODGAN, MAT, PCONV, EDGECONNECT, MMAGIC)}


def register(protocol: Protocol, replace: bool = False) -> Protocol:
    """Add a protocol to the registry (a name already taken is refused unless replace=True)."""
    if not isinstance(protocol, Protocol):
        raise TypeError(f"register() takes a Protocol, got {type(protocol).__name__}")
    if protocol.name in PROTOCOLS and not replace:
        raise ValueError(f"a protocol named {protocol.name!r} is already registered; choose another name "
                         f"(or pass replace=True)")
    PROTOCOLS[protocol.name] = protocol
    return protocol


def get_protocol(name: str) -> Protocol:
    if name in PROTOCOLS:
        return PROTOCOLS[name]
    close = difflib.get_close_matches(str(name), PROTOCOLS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown protocol {name!r}.{hint} Known: {', '.join(sorted(PROTOCOLS))} "
                     f"(add one with --protocol-file FILE)")


def protocol_from_dict(d: Mapping[str, Any], path: str = "<dict>") -> Protocol:
    valid = {f.name for f in dataclasses.fields(Protocol)}
    bad = [k for k in d if k not in valid]
    if bad:
        raise ValueError(f"{path}: unknown protocol field(s) {bad}; valid: {', '.join(sorted(valid))}")
    try:
        return Protocol(**d)
    except TypeError as e:
        raise ValueError(f"{path}: {e}") from e


def load_protocol_file(path: str, replace: bool = False) -> list:
    """Register the protocols a user's file defines and return them (module docstring: .py or .json)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--protocol-file {path} does not exist")
    if path.endswith(".json"):
        with open(path) as fh:
            try:
                data = json.load(fh)
            except json.JSONDecodeError as e:
                raise ValueError(f"--protocol-file {path} is not valid JSON: {e}") from e
        found = [protocol_from_dict(d, path) for d in (data if isinstance(data, list) else [data])]
    else:
        import runpy
        ns = runpy.run_path(path)
        found = list(ns["PROTOCOLS"]) if "PROTOCOLS" in ns else [v for v in ns.values() if isinstance(v, Protocol)]
    if not found:
        raise ValueError(f"--protocol-file {path} defines no Protocol (a .py file: PROTOCOLS = [Protocol(...)]; "
                         f"a .json file: one protocol's fields or a list of them)")
    return [register(p, replace=replace) for p in found]

