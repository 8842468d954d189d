"""Evaluation takes the weights as an argument of one compiled program (not constants closed over:
one compilation per family and shape, whatever weights) and keeps only the outputs samples.png
shows (tests/toy_family.py)."""

import os
import sys

import jax
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import toy_family  # noqa: E402  (registers 'toy')

from inpaintjax.data import fields  # noqa: E402
from inpaintjax.training import evaluate as evaluate_lib  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(config, family, two weight sets, masks, buckets, images, pair): a frozen mask set of 12
    masks at 32 x 32 and four random images."""
    c = toy_family.toy_config()
    family = toy_family.ToyFamily(c)
    batch = fields.example_batch(family.batch_spec(), 1, 16, 16)
    weights = [family.inference_variables(family.init_state(jax.random.key(seed), batch))
               for seed in (1, 2)]
    masks, buckets = evaluate_lib.frozen_masks(c, str(tmp_path_factory.mktemp("masks")))
    images = np.random.default_rng(0).uniform(size=(4, 32, 32, 3)).astype(np.float32)
    pair = np.arange(len(masks)) % len(images)
    return c, family, weights, masks, buckets, images, pair


def test_two_weight_sets_share_one_traced_program(setup, monkeypatch):
    c, family, weights, masks, buckets, images, pair = setup
    traces = []
    inpaint = family.inpaint

    def counting_inpaint(variables, inputs):   # runs once per trace of the evaluation program
        traces.append(1)
        return inpaint(variables, inputs)

    monkeypatch.setattr(family, "inpaint", counting_inpaint)
    summaries = [evaluate_lib.score_batches(c, family, w, images, masks, buckets, pair,
                                            progress=False)[0].summary() for w in weights]
    assert len(traces) == 1
    # the second weight set really was evaluated: its scores differ from the first's
    assert summaries[0]["all"]["count"] == summaries[1]["all"]["count"] == len(masks)
    assert summaries[0]["all"]["l1_hole"] != summaries[1]["all"]["l1_hole"]


def test_only_the_sample_outputs_are_kept(setup):
    c, family, (variables, _), masks, buckets, images, pair = setup
    rows = evaluate_lib.sample_rows(buckets, pair, 3, len(images))
    assert len(rows) == 3 and len(set(pair[rows])) == 3     # three different images
    model, _, kept = evaluate_lib.score_batches(c, family, variables, images, masks, buckets, pair,
                                                rows, progress=False)
    assert sorted(kept) == sorted(rows)                      # nothing else retained
    assert model.summary()["all"]["count"] == len(masks)    # every mask was scored
    # each kept output is the model's output for its own image and mask
    for i in rows:
        want = family.inpaint(variables, {"image": images[pair[i]][None], "mask": masks[i][None]})
        np.testing.assert_allclose(kept[i], np.clip(want["output"][0], 0, 1), atol=1e-6)
