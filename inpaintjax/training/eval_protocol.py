"""`eval.py --protocol NAME`: a model (trained, or official weights) through one of the field's
evaluation protocols (`inpaintjax.protocols`), by the same path another method's outputs take.

Under `out_dir` (eval.py: `<workdir>/protocol/<name>`):

- `inputs/`: the protocol's inputs (`protocols.write_inputs`): `truth/`, `masks/` (white = hole),
  `masked/`, `manifest.json`, prepared from the held-out source of `config.data` (a folder, a TFDS
  split read as array_record without TensorFlow, or the sample photographs), with the protocol's
  seeded mask generator or a folder of mask files (NVIDIA's Irregular Mask Dataset, ...).
- `outputs/<name>.png`: the model's completion of each input, composited with the known pixels, and
  `outputs/model.json`: the model that made them (`model_record`: its family, a SHA-256 of its
  variables, and the workdir and step or the weights file the caller names).
- `<protocol>.json`, `.csv`, `.md` (and LaMa's `.tsv`): the tables, with the published rows.

Every stage resumes after an interruption: inputs whose manifest matches are reused, outputs already
written are not computed again (each file appears whole or not at all), and the scoring continues from
its checkpoint (`scoring_state.npz`, saved every `checkpoint_every` images). Outputs are reused only
for the model that made them: a folder whose `outputs/model.json` names another model (another
checkpoint step, other weights: other variables), or that holds outputs without that record, is
refused before any output is computed or scored, as inputs of another request are (one line naming
the folder, both models and the fix: another --protocol_dir, or delete the outputs folder; nothing
is deleted).
With several JAX processes, each writes, fills and scores its share; process 0 writes the tables.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from inpaintjax import protocols
from inpaintjax.protocols import evaluate as protocol_eval

log = logging.getLogger(__name__)


EVAL_PY_OPTIONS = {"inception": "--config.eval.inception_weights=FILE",
                   "lpips": "--config.eval.lpips_backbone=FILE", "skip": "--protocol_skip"}


def _weights(config):
    """(inception, lpips backbone, lpips linear layers) files named by config.eval, None where empty."""
    e = config.eval
    return e.inception_weights or None, e.lpips_backbone or None, e.lpips_lin or None


def check_request(config, family, proto, skip: Sequence[str]) -> None:
    """Refuse, before any work, a run that cannot finish: a protocol size the family cannot take, a
    metric whose weight file is not named or does not exist."""
    size = proto.preparation.size if proto.preparation else proto.image_size
    if size % family.size_multiple:
        raise ValueError(f"protocol {proto.name!r} evaluates {size}x{size} images but {family.name} needs sides "
                         f"that are multiples of {family.size_multiple}")
    metrics = protocol_eval._chosen_metrics(proto, skip, "masks", int(config.eval.batch_size))
    inception, backbone, lin = _weights(config)
    protocol_eval._require_weights(metrics, inception, backbone, EVAL_PY_OPTIONS)
    for key, path in (("inception_weights", inception), ("lpips_backbone", backbone), ("lpips_lin", lin)):
        if path and not os.path.isfile(path):
            raise FileNotFoundError(f"config.eval.{key}={path}: no such file")


#: the record of the model that made a protocol folder's outputs, inside `outputs/`
MODEL_RECORD = "model.json"
#: the provenance keys a caller may give `run_protocol(model=...)`, in the order they are printed
PROVENANCE = ("weights", "workdir", "step")


def variables_digest(variables) -> str:
    """SHA-256 of a model's variables: every leaf's tree path, dtype, shape and bytes. Two checkpoint
    steps of a run, or two weight files, give two digests; the same weights read twice give one."""
    import hashlib

    import jax
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(variables)[0]:
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:  # sharded over processes
            from jax.experimental import multihost_utils
            leaf = multihost_utils.process_allgather(leaf, tiled=True)
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}\0{a.dtype}\0{a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def model_record(family, variables, model: Optional[Mapping[str, Any]] = None) -> dict:
    """What identifies the model that fills a protocol's inputs: the family, its evaluation label, the
    SHA-256 of its variables (what decides whether outputs may be reused), and `model`'s provenance
    (`weights`: the weights file; `workdir`, `step`: a training run's checkpoint; None values dropped)."""
    bad = sorted(set(model or {}) - set(PROVENANCE))
    if bad:
        raise ValueError(f"run_protocol(model=...): unknown key(s) {bad}; give {', '.join(PROVENANCE)}")
    record = {"family": family.name, "label": family.evaluation_label(),
              "variables_sha256": variables_digest(variables)}
    for key in PROVENANCE:
        value = (model or {}).get(key)
        if value is not None:
            record[key] = os.path.abspath(value) if key in ("weights", "workdir") else int(value)
    return record


def describe_model(record: Mapping[str, Any]) -> str:
    """'toy, step 2 of /runs/x, variables sha256 1a2b3c4d5e6f' (what a record knows, in words)."""
    parts = [str(record.get("label") or record.get("family") or "unknown family")]
    if record.get("weights"):
        parts.append(f"weights {record['weights']}")
    step = record.get("step")
    if record.get("workdir"):
        parts.append(f"{'step ' + str(step) if step is not None else 'a checkpoint'} of {record['workdir']}")
    elif step is not None:
        parts.append(f"step {step}")
    if record.get("variables_sha256"):
        parts.append(f"variables sha256 {str(record['variables_sha256'])[:12]}")
    return ", ".join(parts)


def claim_outputs(outputs_dir: str, record: Mapping[str, Any]) -> bool:
    """Make sure `outputs_dir` holds only outputs of the model `record` describes (`model_record`),
    before any is reused or written: a folder with outputs whose record names another model (another
    family or other variables), or with outputs and no record (they cannot be attributed), is refused
    with one line naming the folder, both models and the fix; nothing is deleted. Returns True when
    the folder holds no outputs yet (the caller then writes this model's record there,
    `write_model_record`)."""
    from inpaintjax.image_io import list_images
    path = os.path.join(outputs_dir, MODEL_RECORD)
    saved = None
    if os.path.isfile(path):
        try:
            with open(path) as fh:
                saved = json.load(fh)
        except (OSError, ValueError) as e:
            saved = {"label": f"unreadable record {path} ({type(e).__name__})"}
        if not isinstance(saved, dict):
            saved = {"label": f"unreadable record {path}"}
        if saved.get("family") == record["family"] and saved.get("variables_sha256") == record["variables_sha256"]:
            return False
    if os.path.isdir(outputs_dir) and list_images(outputs_dir, recursive=True):
        made_by = describe_model(saved) if saved is not None else f"a model it does not record: no {MODEL_RECORD}"
        raise ValueError(f"{outputs_dir} holds the outputs of another model ({made_by}), not of the model "
                         f"evaluated now ({describe_model(record)}); pass another --protocol_dir, or delete "
                         f"{outputs_dir} to fill it with this model (nothing was deleted)")
    return True


def write_model_record(outputs_dir: str, record: Mapping[str, Any]) -> None:
    """`outputs_dir/model.json`, written to a temporary file and renamed (it appears whole)."""
    os.makedirs(outputs_dir, exist_ok=True)
    path = os.path.join(outputs_dir, MODEL_RECORD)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(dict(record), fh, indent=1)
        fh.write("\n")
    os.replace(tmp, path)


def fill_outputs(config, family, variables, inputs_dir: str, outputs_dir: str, files: Sequence[str],
                 progress: bool = True) -> int:
    """Write the model's completion of every input of this process's share that has no output yet
    (`outputs_dir/<file>`), in batches of config.eval.batch_size; returns how many were written."""
    from inpaintjax import data as data_lib
    from inpaintjax.image_io import read_image
    from inpaintjax.image_io import write_image
    from inpaintjax.masks.folders import read_polarity_mask
    from inpaintjax.training.evaluate import predict

    share = protocol_eval.process_share(len(files))
    todo = [i for i in range(share.start, share.stop) if not os.path.isfile(os.path.join(outputs_dir, files[i]))]
    if len(todo) < share.stop - share.start:
        log.info("protocol outputs: %d of this process's %d already in %s", share.stop - share.start - len(todo),
                 share.stop - share.start, outputs_dir)
    spec, bs = family.batch_spec(), int(config.eval.batch_size)
    starts = range(0, len(todo), bs)
    if progress and todo:
        from tqdm import tqdm
        starts = tqdm(starts, desc=f"inpaint {len(todo)} protocol inputs", unit="batch", file=sys.stderr,
                      dynamic_ncols=True)
    for s in starts:
        idx = todo[s:s + bs]
        full = idx + idx[-1:] * (bs - len(idx))  # the last batch padded: one compilation
        truth = np.stack([read_image(os.path.join(inputs_dir, "truth", files[i]), "truth image") for i in full])
        hole = np.stack([read_polarity_mask(os.path.join(inputs_dir, "masks", files[i]), "white_hole")
                         for i in full])[..., None]
        inputs = family.inference_inputs(data_lib.eval_batch(config, spec, truth, hole, indices=full))
        pred, _ = predict(family, variables, inputs)
        filled = np.where(hole > 0.5, np.asarray(pred), truth.astype(np.float32) / 255.0)
        for j, i in enumerate(idx):
            write_image(os.path.join(outputs_dir, files[i]), filled[j])
    return len(todo)


def run_protocol(config, family, variables, protocol, out_dir: str, *, mask_set: Optional[str] = None,
                 mask_folder: Optional[str] = None, mask_polarity: str = "white_hole",
                 num_images: Optional[int] = None, seed: int = 0, skip: Sequence[str] = (),
                 progress: bool = True, checkpoint_every: int = 1000, source=None,
                 model: Optional[Mapping[str, Any]] = None) -> dict:
    """Run `protocol` on `family` with `variables` (see the module docstring); returns the report of
    `protocols.evaluate_protocol` with the model's label, on every process. `source`: the images
    (default: `config.data`'s held-out source). `model`: where the variables came from, recorded with
    the outputs and named in messages (`weights`: the file; `workdir` and `step`: a run's checkpoint);
    outputs are reused only when the variables themselves are the same (`claim_outputs`)."""
    import jax
    from inpaintjax.data import sources

    proto = protocols.get_protocol(protocol) if isinstance(protocol, str) else protocol
    check_request(config, family, proto, skip)
    source = sources.make_source(config.data, "eval") if source is None else source
    inputs_dir, outputs_dir = os.path.join(out_dir, "inputs"), os.path.join(out_dir, "outputs")
    manifest = protocols.write_inputs(proto, source, inputs_dir, mask_set, seed, mask_folder=mask_folder,
                                      mask_polarity=mask_polarity, num_images=num_images)
    files = [e["file"] for e in manifest["images"]]
    record = model_record(family, variables, model)
    fresh = claim_outputs(outputs_dir, record)  # every process checks before any writes
    protocol_eval._sync("inpaintjax protocol outputs checked")
    if fresh and jax.process_index() == 0:
        write_model_record(outputs_dir, record)
    fill_outputs(config, family, variables, inputs_dir, outputs_dir, files, progress and jax.process_index() == 0)
    protocol_eval._sync("inpaintjax protocol outputs")
    inception, backbone, lin = _weights(config)
    report = protocols.evaluate_protocol(
        proto, os.path.join(inputs_dir, "truth"), outputs_dir, os.path.join(inputs_dir, "masks"),
        inception_path=inception, lpips_backbone=backbone, lpips_lin=lin, batch_size=int(config.eval.batch_size),
        skip=skip, fid_method=config.eval.fid_method, progress=progress and jax.process_index() == 0,
        checkpoint=os.path.join(out_dir, "scoring_state.npz"), checkpoint_every=checkpoint_every)
    report["method"] = family.evaluation_label()
    report["inputs"] = {k: v for k, v in manifest.items() if k != "images"}
    report["masks_label"] = manifest.get("mask_set") or f"{os.path.basename(manifest['mask_folder'])} (folder)"
    if jax.process_index() == 0:
        protocols.write_tables(report, out_dir)
    return report
