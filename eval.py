"""Evaluate a trained run (or official weights) on the frozen mask set, per hole-area bucket.

    python eval.py --config configs/deepfill_v2.py:demo --workdir runs/demo
    python eval.py --config configs/deepfill_v2.py:places2 --weights path/to/official --workdir runs/official

Writes <workdir>/eval/metrics.{json,csv,md,png}, the same for each classical fill that
config.eval.baselines names on the same images and masks (eval/baseline_<name>.*: mean,
biharmonic, telea, patchmatch by default), eval/comparison.md (every method per bucket, printed)
and <workdir>/samples.png. The frozen masks are built once into <workdir>/eval_masks (or --mask_dir).
The model comes from the newest readable checkpoint in --workdir (or --step), or from --weights;
the evaluation settings (config.eval.*, the held-out data in config.data) from --config, or from the
config saved in the workdir when --config is not given.

FID, KID, IS, LPIPS and P-IDS / U-IDS join the tables when the config names their weight files:

    python eval.py --config configs/deepfill_v2.py:places2 --workdir runs/x \
        --config.eval.inception_weights=pt_inception-2015-12-05-6726825d.pth \
        --config.eval.lpips_backbone=alexnet-owt-7be5be79.pth

(docs/evaluation-metrics.md). With several processes (jax.distributed) each evaluates its share of
the batches and process 0 writes the combined tables.

A paper's evaluation protocol instead (docs/protocols.md): the model fills the protocol's inputs, made
from config.data's held-out images with the protocol's seeded masks (or a mask folder), and the
outputs are scored as the paper scores them, beside the published rows:

    python eval.py --workdir runs/official --weights states_tf_places2.npz --protocol mmagic \
        --protocol_mask_set deepfill_v2_strokes --config configs/deepfill_v2.py:places2 \
        --config.data.source=tfds --config.data.name=places365_small --config.data.eval_split=validation

writes <workdir>/protocol/<name>/ (inputs/, outputs/, <name>.json/.csv/.md); rerun the same command to
resume an interrupted run.

Exit status: 0 done; 2 nothing evaluated (a missing workdir, checkpoint step or weight file, a
setting or mask set that does not fit: one line naming it, no traceback).
"""

import os
import sys

from absl import app, flags
from ml_collections import config_flags

from inpaintjax import entry_point

config_flags.DEFINE_config_file("config", None, "config file and variant (evaluation settings)",
                                lock_config=False)
flags.DEFINE_string("workdir", None, "training run directory; outputs are written here")
flags.DEFINE_string("weights", None, "official weights (any family; format detected) to evaluate "
                    "instead of the workdir's checkpoint")
flags.DEFINE_string("family", None, "the family of --weights where the files cannot tell")
flags.DEFINE_integer("step", None, "checkpoint step of --workdir, or of --weights when that is a "
                     "train.py workdir (default: the newest readable one)")
flags.DEFINE_string("mask_dir", None, "frozen eval mask set (built there if missing); default "
                    "<workdir>/eval_masks")
flags.DEFINE_string("protocol", None, "run a paper's evaluation protocol instead: lama, comodgan, mat, pconv, "
                    "edgeconnect, mmagic, or one defined in --protocol_file")
flags.DEFINE_string("protocol_file", None, "a .py or .json file defining more protocols")
flags.DEFINE_string("protocol_dir", None, "where the protocol's inputs, outputs and tables go; default "
                    "<workdir>/protocol/<name>")
flags.DEFINE_string("protocol_mask_set", None, "the mask generator (default: the protocol's first mask set)")
flags.DEFINE_string("protocol_mask_folder", None, "take the masks from this folder of mask files instead "
                    "(e.g. NVIDIA's Irregular Mask Dataset with --protocol_mask_polarity=nvidia)")
flags.DEFINE_string("protocol_mask_polarity", "white_hole", "which pixels of --protocol_mask_folder's files "
                    "are hole: white_hole, black_hole, or a source name (nvidia, mat, comodgan, ...)")
flags.DEFINE_integer("protocol_num_images", None, "the first N held-out images only (default: all)")
flags.DEFINE_integer("protocol_seed", 0, "the masks' seed")
flags.DEFINE_list("protocol_skip", [], "metrics of the protocol to leave out (the report is then marked "
                  "not comparable)")
flags.mark_flags_as_required(["workdir"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    entry_point.start(FLAGS, "eval.py")
    import jax
    from inpaintjax.training import configuration_error
    from inpaintjax.training import evaluate as eval_lib
    from inpaintjax.training.checkpoint import load_for_inference
    try:  # the workdir, --step or --weights: the messages name the path and what to give instead
        if FLAGS.weights:
            from inpaintjax.inference import Inpainter
            inpainter = Inpainter.load(FLAGS.weights, family=FLAGS.family, step=FLAGS.step)
            family, variables = inpainter.family, inpainter.variables
            config = FLAGS.config if FLAGS.config is not None else family.config
        else:
            saved, family, variables = load_for_inference(FLAGS.workdir, FLAGS.step)
            config = FLAGS.config if FLAGS.config is not None else saved
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        _stop(e)
    if FLAGS.protocol:
        return _run_protocol(config, family, variables)
    # every process evaluates its share of the batches; process 0 writes the combined tables
    try:
        summary = eval_lib.evaluate(config, family, variables, FLAGS.workdir, FLAGS.mask_dir or "")
    except Exception as e:
        if not configuration_error(e):  # raised during the work: a bug, with its traceback
            raise
        _stop(e)
    if jax.process_index() != 0:
        return
    with open(os.path.join(FLAGS.workdir, "eval", "comparison.md")) as f:
        print(f.read())
    print(f"eval: wrote {os.path.join(FLAGS.workdir, 'eval')}/metrics.{{json,csv,md,png}}, "
          f"baseline_*.*, comparison.md and {os.path.join(FLAGS.workdir, 'samples.png')}; overall "
          + ", ".join(f"{k} {v:.4g}" for k, v in summary["all"].items() if isinstance(v, float)))


def _stop(e: BaseException):
    """An error the user can fix (a path, a setting, a weight file): its message alone, exit 2."""
    text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    print(f"eval.py: error: {text}", file=sys.stderr, flush=True)
    sys.exit(2)


def _run_protocol(config, family, variables):
    import jax
    from inpaintjax import protocols
    from inpaintjax.training.eval_protocol import run_protocol
    try:
        if FLAGS.protocol_file:
            protocols.load_protocol_file(FLAGS.protocol_file, replace=True)
        proto = protocols.get_protocol(FLAGS.protocol)
        out_dir = FLAGS.protocol_dir or os.path.join(FLAGS.workdir, "protocol", proto.name)
        report = run_protocol(config, family, variables, proto, out_dir, mask_set=FLAGS.protocol_mask_set,
                              mask_folder=FLAGS.protocol_mask_folder, mask_polarity=FLAGS.protocol_mask_polarity,
                              num_images=FLAGS.protocol_num_images, seed=FLAGS.protocol_seed,
                              skip=FLAGS.protocol_skip,
                              model=(dict(weights=FLAGS.weights, step=FLAGS.step) if FLAGS.weights
                                     else dict(workdir=FLAGS.workdir, step=FLAGS.step)))
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        _stop(e)
    if jax.process_index() == 0:
        print(protocols.format_text(report))
        print(f"eval: wrote {out_dir}/{proto.name}.{{json,csv,md,png}} (inputs/, outputs/ beside them)")


if __name__ == "__main__":
    entry_point.run(main, "eval.py")
