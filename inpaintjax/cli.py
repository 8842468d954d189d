"""`inpaintjax` console command.

  inpaintjax inpaint --weights W --image a.png --mask m.png [--sketch s.png] --out o.png
  inpaintjax inpaint --weights W --image photos/ --mask masks/ --out results/   (folder mode)
  inpaintjax inpaint --method patchmatch --image a.png --mask m.png --out o.png [--seed 0]
  inpaintjax serve --weights W [--host 127.0.0.1] [--port 8765]   (sketch-and-fill page)
  inpaintjax evaluate --truth DIR --output DIR [--mask DIR] --metrics fid,lpips,... --inception FILE
                      [--resize pytorch|tf1|clean] [--lpips-net alex|vgg|squeeze] [--lpips-backbone FILE]
                      [--lpips-lin FILE] [--report FILE.json]   (FID, KID, IS, LPIPS, P-IDS/U-IDS, L1...)
  inpaintjax evaluate --protocol lama|comodgan|mat|pconv|edgeconnect|mmagic --truth DIR --output DIR
                      --mask DIR [--inception FILE] [--lpips-backbone FILE] [--tables DIR]   (a paper's protocol)
  inpaintjax evaluate --protocol NAME --truth PHOTOS --write-inputs DIR   (its seeded masks and inputs)

W is a train.py workdir or official weights of any family (format and family detected; --family
settles files that more than one family could read; `--set KEY=VALUE`, repeatable, changes a
setting of the loaded model, e.g. GLCIC's inference.postprocess=true). `--method` picks a
classical fill instead of a model (mean, biharmonic, telea, patchmatch: `inpaintjax.baselines`;
no --weights), for the classical answer or a comparison; `--seed` picks PatchMatch's random
stream. In folder mode every image in --image is paired with the file of the same base name (any image extension)
in --mask (or one mask file for all images), and likewise --sketch; results are written as
PNG under --out with the same base names.

Nothing is lost: before any inference the run is planned and refused (exit 2, one message) when an
output would replace one of its inputs (allowed with --overwrite) or another output of the same
run (x.png and x.jpg in one folder), when --out has no known image extension, is an existing folder
for a single image, or cannot be written. In folder mode a file that cannot be used (undecodable,
too large for --max-pixels, NaN pixels, a mask of another size) is skipped with a message; the run
goes on and exits 1 at the end, listing the skipped files. Exit 0 when every image was written.
Each output line reports the hole ratio of its mask.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Optional, Sequence

import numpy as np

from inpaintjax.image_io import IMAGE_EXTENSIONS, OUTPUT_EXTENSIONS, list_images, stems


def _partner(folder_or_file: Optional[str], stem: str, what: str) -> Optional[str]:
    if folder_or_file is None:
        return None
    if not os.path.isdir(folder_or_file):
        return folder_or_file  # one file shared by every image
    for f in list_images(folder_or_file):
        if os.path.splitext(f)[0] == stem:
            return os.path.join(folder_or_file, f)
    raise FileNotFoundError(f"no {what} for image {stem!r} in {folder_or_file} (expected a file "
                            f"named {stem}.png or another image extension)")


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _check_writable(path: str, what: str) -> None:
    """Refuse, before any inference, an output path that cannot be written: its folder cannot be
    created or written to (checked by creating and removing a probe file)."""
    import tempfile
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ValueError(f"{what} {path} cannot be written ({e.strerror or e}); choose another "
                         f"path") from None


def _check_output_file(path: str) -> None:
    ext = os.path.splitext(path)[1].lower()
    if os.path.isdir(path):
        raise ValueError(f"--out {path} is an existing folder but --image is one file; name the "
                         f"output file, e.g. {os.path.join(path, 'result.png')}")
    if ext not in OUTPUT_EXTENSIONS:
        raise ValueError(f"--out {path}: unknown image extension {ext or '(none)'!r}; use one of "
                         f"{', '.join(OUTPUT_EXTENSIONS)}")


def _plan(args) -> tuple[list[tuple[str, str, Optional[str], str]], bool]:
    """Every (image, mask, sketch, output) of the run, checked before any work: a missing partner,
    an output that would replace an input (unless --overwrite) or another output of the run, an
    unknown output extension, an existing folder named as a file, or an unwritable path.
    Returns (jobs, folder_mode)."""
    if os.path.isdir(args.image):
        names = list_images(args.image)
        if not names:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {args.image}")
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise NotADirectoryError(f"--out {args.out} must be a directory in folder mode")
        clashes = {s: n for s, n in stems(names).items() if len(n) > 1}
        if clashes:
            listed = "; ".join(" and ".join(n) for n in clashes.values())
            raise ValueError(f"{args.image} holds images with the same name and different "
                             f"extensions ({listed}): their results would both be written as "
                             f"<name>.png in {args.out}; rename or move one of each")
        jobs = []
        for name in names:
            stem = os.path.splitext(name)[0]
            jobs.append((os.path.join(args.image, name), _partner(args.mask, stem, "mask"),
                         _partner(args.sketch, stem, "sketch"),
                         os.path.join(args.out, stem + ".png")))
        folder_mode = True
    else:
        if os.path.isdir(args.mask):
            raise IsADirectoryError(f"--mask {args.mask} is a directory but --image is one file")
        _check_output_file(args.out)
        jobs = [(args.image, args.mask, args.sketch, args.out)]
        folder_mode = False
    inputs = [p for job in jobs for p in job[:3] if p is not None]
    replaced = sorted({out for *_, out in jobs if any(_same_file(out, p) for p in inputs)})
    if replaced and not args.overwrite:
        shown = ", ".join(replaced[:5]) + (f" and {len(replaced) - 5} more" if len(replaced) > 5 else "")
        raise ValueError(f"--out would replace input file(s) {shown}; choose another --out, or "
                         f"pass --overwrite to replace them")
    _check_writable(jobs[0][3], "--out")
    return jobs, folder_mode


def _hole_ratio(mask: np.ndarray) -> float:
    return float(np.mean(mask > 0.5)) if mask.size else 0.0


def _classical_filler(args):
    """(height, width, what) -> None size check and (image, mask) -> output of the classical fill
    `args.method`, one image at a time."""
    from inpaintjax import baselines
    from inpaintjax.inference import DEFAULT_MAX_PIXELS
    if args.sketch is not None:
        raise ValueError(f"--sketch guides a model; the classical fill {args.method!r} takes none "
                         f"(drop --sketch or use --weights)")
    if args.method == "telea" and not baselines.have_opencv():
        raise ValueError(baselines.OPENCV_MISSING)
    limit = DEFAULT_MAX_PIXELS if args.max_pixels is None else args.max_pixels

    def check_size(h, w, what):
        if h * w > limit:
            raise ValueError(f"{what}: {w}x{h} = {w * h:,} pixels is above the limit of "
                             f"{limit:,} pixels; use a smaller image or raise --max-pixels")

    def fill(image, mask):
        out = baselines.fill(args.method, image[None].astype(np.float32) / 255.0,
                             mask[None, ..., None], seed=args.seed)
        return out[0]

    return check_size, fill


def _cmd_inpaint(args) -> int:
    from inpaintjax.image_io import image_size, read_image, read_mask, write_image
    from inpaintjax.inference import Inpainter
    if args.method == "model" and args.weights is None:
        raise ValueError("--weights is required with --method model (a train.py workdir or "
                         "official weights); or pick a classical fill with --method "
                         "mean|biharmonic|telea|patchmatch")
    if not os.path.exists(args.image):
        raise FileNotFoundError(f"--image not found: {args.image}")
    if not os.path.exists(args.mask):
        raise FileNotFoundError(f"--mask not found: {args.mask}")
    if args.sketch is not None and not os.path.exists(args.sketch):
        raise FileNotFoundError(f"--sketch not found: {args.sketch}")
    if args.method == "model" and not os.path.exists(args.weights) and not os.path.exists(
            args.weights + ".index"):
        raise FileNotFoundError(f"--weights not found: {args.weights} (a train.py workdir or "
                                f"official weights of a family)")
    if args.max_pixels is not None and args.max_pixels < 1:
        raise ValueError(f"--max-pixels must be >= 1, got {args.max_pixels}")
    if args.method != "model":
        if args.set:
            raise ValueError(f"--set {args.set[0]} configures a model (--weights); the classical "
                             f"fill --method {args.method} has no config")
        check_size, classical = _classical_filler(args)
    jobs, folder_mode = _plan(args)
    if args.method == "model":
        kw = {} if args.max_pixels is None else {"max_pixels": args.max_pixels}
        inpainter = Inpainter.load(args.weights, family=args.family, settings=args.set, **kw)
        check_size = inpainter.check_size

    def one(image_path, mask_path, sketch_path, dest):
        w, h = image_size(image_path)
        check_size(h, w, image_path)  # before decoding anything
        mask = read_mask(mask_path, "mask")
        sketch = None if sketch_path is None else read_mask(sketch_path, "sketch")
        for what, path, arr in (("mask", mask_path, mask), ("sketch", sketch_path, sketch)):
            if arr is not None and arr.shape != (h, w):
                raise ValueError(f"{what} {path} is {arr.shape[1]}x{arr.shape[0]} (WxH) but the image "
                                 f"{image_path} is {w}x{h}; resize the {what} to its image")
        if args.method == "model":
            out = inpainter.inpaint(read_image(image_path), mask, sketch)
        else:
            out = classical(read_image(image_path), mask)
        write_image(dest, out)
        return _hole_ratio(mask)

    if not folder_mode:
        ratio = one(*jobs[0])
        print(f"wrote {args.out} (hole {ratio:.1%} of the image)")
        return 0
    t0 = time.time()
    skipped = []
    for i, job in enumerate(jobs):
        try:
            ratio = one(*job)
        except (ValueError, OSError) as e:  # an unreadable / too large / mismatched file: go on
            skipped.append((job[0], str(e)))
            print(f"[{i + 1}/{len(jobs)}] skipped {job[0]}: {e}", file=sys.stderr)
            continue
        print(f"[{i + 1}/{len(jobs)}] {job[3]} (hole {ratio:.1%} of the image)")
    done = len(jobs) - len(skipped)
    print(f"inpainted {done} of {len(jobs)} images in {time.time() - t0:.1f} s -> {args.out}")
    if skipped:
        print(f"inpaintjax inpaint: {len(skipped)} image(s) skipped:", file=sys.stderr)
        for path, why in skipped:
            print(f"  {path}: {why}", file=sys.stderr)
        return 1
    return 0


def _cmd_serve(args) -> int:
    from inpaintjax import serve
    if not os.path.exists(args.weights) and not os.path.exists(args.weights + ".index"):
        raise FileNotFoundError(f"--weights not found: {args.weights} (a train.py workdir or "
                                f"official weights of a family)")
    if args.max_bytes <= 0 or args.max_pixels <= 0:
        raise ValueError("--max-bytes and --max-pixels must be positive")
    serve.serve(args.weights, args.host, args.port, args.max_bytes, args.max_pixels, args.family,
                args.set)
    return 0


def _cmd_evaluate(args) -> int:
    from inpaintjax.perceptual import folders
    if args.protocol_file:
        from inpaintjax import protocols
        for p in protocols.load_protocol_file(args.protocol_file, replace=True):
            print(f"registered protocol {p.name!r} from {args.protocol_file}")
    if args.mask_polarity is not None and args.mask is None and args.mask_folder is None:
        raise ValueError(f"--mask-polarity {args.mask_polarity} says how to read the files of --mask DIR or "
                         f"--mask-folder DIR, and neither is given")
    if args.write_inputs:
        return _cmd_write_inputs(args)
    if args.output is None:
        raise ValueError("--output DIR is required (the folder of inpainted images to score), unless "
                         "--write-inputs DIR writes a protocol's inputs")
    for flag, value in (("--mask-folder", args.mask_folder), ("--num-images", args.num_images),
                        ("--mask-set", args.mask_set), ("--seed", args.seed)):
        if value is not None:
            raise ValueError(f"{flag} goes with --write-inputs DIR (it chooses the inputs to write)")
    if args.checkpoint_every is not None and not args.checkpoint:
        raise ValueError("--checkpoint-every goes with --checkpoint FILE (and --protocol NAME)")
    if args.protocol:
        return _cmd_evaluate_protocol(args)
    for flag, value in (("--skip", args.skip), ("--tables", args.tables), ("--any-size", args.any_size),
                        ("--checkpoint", args.checkpoint)):
        if value:
            raise ValueError(f"{flag} goes with --protocol NAME")
    metrics = folders.parse_metrics(args.metrics or "l1,l2,psnr,ssim,fid")
    if args.report:
        _check_writable(args.report, "--report")
    _warn_unused_weights(args, metrics)
    report = folders.evaluate_folders(
        args.truth, args.output, metrics, mask_dir=args.mask, inception_path=args.inception,
        resize=args.resize or "pytorch", lpips_net=args.lpips_net or "alex", lpips_backbone=args.lpips_backbone,
        lpips_lin=args.lpips_lin, batch_size=args.batch_size, fid_method=args.fid_method,
        save_stats=args.save_stats, progress=not args.quiet, mask_polarity=args.mask_polarity or "white_hole")
    print(folders.format_table(report))
    if args.report:
        folders.write_report(args.report, report)
        print(f"wrote {args.report}")
    return 0


def _warn_unused_weights(args, metrics) -> None:
    """One stderr line for each network option that no metric of a folder evaluation uses (the run
    goes on: nothing is lost, but the user may have meant to ask for the metric)."""
    from inpaintjax.perceptual import folders
    inception = [m for m in metrics if m in folders.INCEPTION_METRICS]
    for flag, value, used, needs in (
            ("--inception", args.inception, inception, ", ".join(folders.INCEPTION_METRICS)),
            ("--resize", args.resize, inception, ", ".join(folders.INCEPTION_METRICS)),
            ("--lpips-net", args.lpips_net, "lpips" in metrics, "lpips"),
            ("--lpips-backbone", args.lpips_backbone, "lpips" in metrics, "lpips"),
            ("--lpips-lin", args.lpips_lin, "lpips" in metrics, "lpips")):
        if value is not None and not used:
            print(f"inpaintjax evaluate: warning: {flag} {value} is not used: no metric of --metrics "
                  f"{','.join(metrics)} needs it (only {needs} do)", file=sys.stderr)


def _cmd_evaluate_protocol(args) -> int:
    from inpaintjax import protocols
    proto = protocols.get_protocol(args.protocol)
    for flag, value, why in (("--metrics", args.metrics, "the protocol fixes its metrics (leave some out with --skip)"),
                             ("--resize", args.resize, "the protocol fixes the Inception resize"),
                             ("--lpips-net", args.lpips_net, "the protocol fixes the LPIPS backbone"),
                             ("--save-stats", args.save_stats, "not written in protocol mode")):
        if value is not None:
            raise ValueError(f"{flag} with --protocol: {why}")
    skip = [s.strip() for s in (args.skip or "").split(",") if s.strip()]
    if args.report:
        _check_writable(args.report, "--report")
    from inpaintjax import distributed
    distributed.initialize()  # several processes when JAX_COORDINATOR_ADDRESS etc. say so
    import jax
    report = protocols.evaluate_protocol(
        proto, args.truth, args.output, args.mask, inception_path=args.inception,
        lpips_backbone=args.lpips_backbone, lpips_lin=args.lpips_lin, batch_size=args.batch_size, skip=skip,
        allow_other_size=args.any_size, fid_method=args.fid_method, progress=not args.quiet,
        mask_polarity=args.mask_polarity or "white_hole", checkpoint=args.checkpoint,
        checkpoint_every=1000 if args.checkpoint_every is None else args.checkpoint_every)
    if jax.process_index() != 0:  # every process holds the whole report; one writes it
        return 0
    print(protocols.format_text(report))
    if args.report:
        from inpaintjax.protocols.tables import _json_safe
        import json
        os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
        with open(args.report, "w") as fh:
            json.dump(_json_safe(report), fh, indent=2)
            fh.write("\n")
        print(f"wrote {args.report}")
    if args.tables:
        for path in protocols.write_tables(report, args.tables):
            print(f"wrote {path}")
    return 0


def _cmd_write_inputs(args) -> int:
    from inpaintjax import protocols
    if not args.protocol:
        raise ValueError("--write-inputs DIR needs --protocol NAME (whose masks and image size to use)")
    for flag, value in (("--output", args.output), ("--mask", args.mask), ("--metrics", args.metrics),
                        ("--skip", args.skip), ("--any-size", args.any_size), ("--tables", args.tables),
                        ("--checkpoint", args.checkpoint), ("--checkpoint-every", args.checkpoint_every),
                        ("--inception", args.inception), ("--resize", args.resize),
                        ("--lpips-net", args.lpips_net), ("--lpips-backbone", args.lpips_backbone),
                        ("--lpips-lin", args.lpips_lin), ("--report", args.report),
                        ("--save-stats", args.save_stats)):
        if value is not None and value is not False:
            raise ValueError(f"{flag} scores outputs, and --write-inputs DIR only writes a protocol's inputs: "
                             f"score them with a second command (--protocol NAME --truth DIR/truth --output ... "
                             f"--mask DIR/masks)")
    manifest = protocols.write_inputs(args.protocol, args.truth, args.write_inputs, mask_set=args.mask_set,
                                      seed=0 if args.seed is None else args.seed, mask_folder=args.mask_folder,
                                      mask_polarity=args.mask_polarity or "white_hole", num_images=args.num_images)
    n = len(manifest["images"])
    masks = manifest.get("mask_set") or f"from {manifest['mask_folder']} ({manifest['mask_polarity']})"
    print(f"{args.write_inputs} holds {n} images of protocol {manifest['protocol']!r} ({manifest['size']}x"
          f"{manifest['size']}, masks {masks}, seed {manifest['seed']}): truth/, masks/ (white = hole), masked/, "
          f"manifest.json")
    return 0


def _add_evaluate_parser(sub) -> None:
    from inpaintjax.perceptual import folders
    e = sub.add_parser("evaluate", help="FID, KID, IS, LPIPS, P-IDS/U-IDS, L1/L2/PSNR/SSIM of a folder of "
                                        "outputs against a folder of ground truth, or a paper's whole protocol")
    e.add_argument("--truth", required=True, help="folder of ground-truth images (with --write-inputs: the "
                                                  "photographs to prepare, or a TFDS split tfds:NAME:SPLIT, "
                                                  "e.g. tfds:places365_small:validation, read as array_record)")
    e.add_argument("--output", default=None,
                   help="folder of inpainted images, paired with --truth by relative path (extension aside)")
    e.add_argument("--mask", default=None,
                   help="optional folder of masks, paired the same way; adds the hole-only l1/l2/psnr/ssim. "
                        "A pixel is a hole where it is at least half of the value range (e.g. >= 128 of 255; "
                        "a 0/1 file: 1 = hole); --mask-polarity black_hole reads the other pixels as hole")
    e.add_argument("--metrics", default=None,
                   help=f"comma-separated, from {','.join(folders.ALL_METRICS)} (default l1,l2,psnr,ssim,fid)")
    e.add_argument("--protocol", default=None,
                   help="score with a paper's whole protocol (metric definitions, groups, tables, published "
                        "rows): lama, comodgan, mat, pconv, edgeconnect, mmagic (docs/protocols.md)")
    e.add_argument("--protocol-file", default=None,
                   help="a .py (PROTOCOLS = [Protocol(...)]) or .json file defining more protocols")
    e.add_argument("--skip", default=None,
                   help="with --protocol: metrics to leave out, comma-separated (the report is then marked "
                        "not comparable)")
    e.add_argument("--any-size", action="store_true",
                   help="with --protocol: score images of another size than the protocol's (not comparable)")
    e.add_argument("--tables", default=None,
                   help="with --protocol: folder for <protocol>.json/.csv/.md/.png (and LaMa's .tsv)")
    e.add_argument("--write-inputs", default=None, metavar="DIR",
                   help="with --protocol: write the protocol's seeded masks and masked inputs for --truth's "
                        "images (truth/, masks/, masked/, manifest.json) for another tool to fill")
    e.add_argument("--mask-set", default=None,
                   help="with --write-inputs: the mask generator (default: the protocol's first mask set)")
    e.add_argument("--mask-folder", default=None, metavar="DIR",
                   help="with --write-inputs: take the masks from this folder of mask files (e.g. NVIDIA's "
                        "Irregular Mask Dataset, with --mask-polarity nvidia), shuffled by --seed")
    from inpaintjax.masks.folders import MASK_SOURCE_POLARITY, POLARITIES
    e.add_argument("--mask-polarity", default=None, choices=POLARITIES + tuple(MASK_SOURCE_POLARITY),
                   help="which pixels of a mask file are hole (--mask, --mask-folder): white_hole (default: "
                        "the bright ones), black_hole, or a source name: nvidia, edgeconnect, lama, deepfill, "
                        "inpaintjax (white), comodgan, mat (black)")
    e.add_argument("--num-images", type=int, default=None,
                   help="with --write-inputs: the first N images only")
    e.add_argument("--seed", type=int, default=None, help="with --write-inputs: the masks' seed (default 0)")
    e.add_argument("--checkpoint", default=None, metavar="FILE",
                   help="with --protocol: save the running scores here every --checkpoint-every images; "
                        "rerun the same command to resume an interrupted evaluation (deleted at the end)")
    e.add_argument("--checkpoint-every", type=int, default=None,
                   help="with --checkpoint: images between saves (default 1000)")
    e.add_argument("--inception", default=None,
                   help="FID Inception weights pt_inception-2015-12-05-6726825d.pth (fid, kid, is, pids, uids)")
    e.add_argument("--resize", default=None, choices=("pytorch", "tf1", "clean"),
                   help="resize to 299: pytorch (pytorch-fid, LaMa; default), tf1 (TTUR, torch-fidelity, "
                        "StyleGAN2-ADA/MAT), clean (clean-fid)")
    e.add_argument("--lpips-net", default=None, choices=("alex", "vgg", "squeeze"),
                   help="LPIPS backbone (default alex; LaMa reports vgg)")
    e.add_argument("--lpips-backbone", default=None,
                   help="torchvision state dict of the LPIPS backbone (alexnet-owt-7be5be79.pth, "
                        "vgg16-397923af.pth or squeezenet1_1-b8a52dc0.pth)")
    e.add_argument("--lpips-lin", default=None,
                   help="LPIPS v0.1 linear layers (lpips/weights/v0.1/<net>.pth; default: the installed lpips package's)")
    e.add_argument("--report", default=None, help="write the results as JSON here")
    e.add_argument("--save-stats", default=None,
                   help="folder to write truth_stats.npz and output_stats.npz (pytorch-fid's mu/sigma)")
    e.add_argument("--batch-size", type=int, default=32, help="image pairs per Inception/LPIPS call (default 32)")
    e.add_argument("--fid-method", default="sqrtm", choices=("sqrtm", "eigh"),
                   help="matrix square root: sqrtm (pytorch-fid's, SciPy) or eigh (JAX, any device)")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=_cmd_evaluate)


SET_HELP = ("a config key of the loaded model changed for this command, e.g. "
            "inference.postprocess=true (GLCIC) or model.edge_sigma=1.5 (EdgeConnect); repeat "
            "for several. Keys that would change the network's layers are refused")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inpaintjax", description="Deep image inpainting (JAX/Flax).")
    sub = p.add_subparsers(dest="command", required=True)
    q = sub.add_parser("inpaint", help="fill the holes of an image (or a folder of images)")
    from inpaintjax import baselines
    q.add_argument("--method", default="model", choices=["model"] + list(baselines.BASELINES),
                   help="'model' (default: the network in --weights) or a classical fill: "
                        + ", ".join(f"{k} = {v}" for k, v in baselines.DESCRIPTIONS.items()))
    q.add_argument("--seed", type=int, default=0,
                   help="random stream of the randomised classical fills (patchmatch)")
    q.add_argument("--weights", default=None,
                   help="a train.py workdir, or official weights of any family (format detected); "
                        "required with --method model")
    q.add_argument("--family", default=None,
                   help="the family of --weights, where the files cannot tell (e.g. deepfill_v2)")
    q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    q.add_argument("--image", required=True, help="image file, or a folder of images")
    q.add_argument("--mask", required=True,
                   help="mask file (a hole where a pixel is at least half of the value range, e.g. "
                        ">= 128 of 255; a 0/1 file: 1 = hole), or a folder of masks named like "
                        "the images")
    q.add_argument("--sketch", default=None,
                   help="optional sketch for guided models (a stroke where a pixel is at least "
                        "half of the value range, as masks); file or folder")
    q.add_argument("--out", required=True,
                   help=f"output file ({', '.join(OUTPUT_EXTENSIONS)}), or folder in folder mode")
    q.add_argument("--overwrite", action="store_true",
                   help="allow outputs to replace input files (refused otherwise)")
    q.add_argument("--max-pixels", type=int, default=None,
                   help="largest image (width x height, after padding) to inpaint; larger ones are "
                        "refused before any work (default: the Inpainter's, see inpaintjax.inference)")
    q.set_defaults(func=_cmd_inpaint)
    from inpaintjax import serve
    v = sub.add_parser("serve", help="a local page: open an image, paint the hole, fill, download")
    v.add_argument("--weights", required=True,
                   help="a train.py workdir, or official weights of any family (format detected)")
    v.add_argument("--family", default=None,
                   help="the family of --weights, where the files cannot tell (e.g. deepfill_v2)")
    v.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    v.add_argument("--host", default=serve.DEFAULT_HOST,
                   help="address to bind (default 127.0.0.1: this machine only)")
    v.add_argument("--port", type=int, default=serve.DEFAULT_PORT, help="port (0 = any free port)")
    v.add_argument("--max-bytes", type=int, default=serve.MAX_BYTES, help="upload size limit in bytes (default 10 MB)")
    v.add_argument("--max-pixels", type=int, default=serve.MAX_PIXELS,
                   help="upload width x height limit")
    v.set_defaults(func=_cmd_serve)
    _add_evaluate_parser(sub)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from inpaintjax import compile_cache, xla_cpu
    xla_cpu.configure()  # before JAX starts: this CPU's calibrated XLA:CPU set-up
    compile_cache.enable()  # programs compiled by an earlier command are loaded, not compiled again
    # orbax warns through absl that a workdir opened for reading is read-only: expected here
    logging.getLogger("absl").setLevel(logging.ERROR)
    try:
        return args.func(args)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, ValueError, KeyError) as e:
        print(f"inpaintjax {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
