"""Evaluate a trained run (or official weights) on the frozen mask set, per hole-area bucket.

    python eval.py --config configs/deepfill_v2.py:demo --workdir runs/demo
    python eval.py --config configs/deepfill_v2.py:places2 --weights path/to/official --workdir runs/official

Writes <workdir>/eval/metrics.{json,csv,md,png}, the same for each classical fill on the same
images and masks (eval/baseline_{mean,biharmonic,telea}.*), eval/comparison.md (every method per
bucket, printed) and <workdir>/samples.png. The frozen masks are built once into <workdir>/eval_masks (or --mask_dir).
The model comes from the newest readable checkpoint in --workdir (or --step), or from --weights;
the evaluation settings (config.eval.*, the held-out data in config.data) from --config, or from the
config saved in the workdir when --config is not given.

FID, KID, IS, LPIPS and P-IDS / U-IDS join the tables when the config names their weight files:

    python eval.py --config configs/deepfill_v2.py:places2 --workdir runs/x \
        --config.eval.inception_weights=pt_inception-2015-12-05-6726825d.pth \
        --config.eval.lpips_backbone=alexnet-owt-7be5be79.pth

(docs/evaluation-metrics.md). With several processes (jax.distributed) each evaluates its share of
the batches and process 0 writes the combined tables.
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
flags.DEFINE_integer("step", None, "checkpoint step (default: the newest readable one)")
flags.DEFINE_string("mask_dir", None, "frozen eval mask set (built there if missing); default "
                    "<workdir>/eval_masks")
flags.mark_flags_as_required(["workdir"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    entry_point.start(FLAGS)
    import jax
    from inpaintjax.training import evaluate as eval_lib
    from inpaintjax.perceptual.torch_files import WeightFileError
    from inpaintjax.training.checkpoint import load_for_inference
    if FLAGS.weights:
        from inpaintjax.inference import Inpainter
        inpainter = Inpainter.load(FLAGS.weights, family=FLAGS.family)
        family, variables = inpainter.family, inpainter.variables
        config = FLAGS.config if FLAGS.config is not None else family.config
    else:
        saved, family, variables = load_for_inference(FLAGS.workdir, FLAGS.step)
        config = FLAGS.config if FLAGS.config is not None else saved
    # every process evaluates its share of the batches; process 0 writes the combined tables
    try:
        summary = eval_lib.evaluate(config, family, variables, FLAGS.workdir, FLAGS.mask_dir or "")
    except WeightFileError as e:  # a metric's weight file: the message names the key and the fix
        print(f"eval.py: {e}", file=sys.stderr)
        sys.exit(2)
    if jax.process_index() != 0:
        return
    with open(os.path.join(FLAGS.workdir, "eval", "comparison.md")) as f:
        print(f.read())
    print(f"eval: wrote {os.path.join(FLAGS.workdir, 'eval')}/metrics.{{json,csv,md,png}}, "
          f"baseline_*.*, comparison.md and {os.path.join(FLAGS.workdir, 'samples.png')}; overall "
          + ", ".join(f"{k} {v:.4g}" for k, v in summary["all"].items() if isinstance(v, float)))


if __name__ == "__main__":
    entry_point.run(main, "eval.py")
