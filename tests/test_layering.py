"""Layering: inference does not depend on the training package, and generic inference code asks
the family contract (`Family.guided`, `GUIDE_KEY`) instead of reading a family's config keys."""

import ast
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import toy_family  # noqa: E402  (registers 'toy')

from inpaintjax import inference  # noqa: E402
from inpaintjax.data import fields  # noqa: E402
from inpaintjax.families.base import GUIDE_KEY, Family  # noqa: E402


def _imported_modules(path):
    """Every module an `import` or `from ... import` names in the file, at any depth."""
    tree = ast.parse(open(path).read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_inference_imports_nothing_from_training():
    names = _imported_modules(inference.__file__)
    assert "inpaintjax.checkpoints" in names
    assert not [n for n in names if n.startswith("inpaintjax.training")]
    assert ".model." not in open(inference.__file__).read()   # no family config key is read


class _GuidedToy(toy_family.ToyFamily):
    guided = True

    def inference_inputs(self, batch):
        self.seen = dict(batch)
        return super().inference_inputs(batch)


def test_the_family_contract_decides_whether_a_sketch_is_taken():
    assert Family.guided is False and toy_family.ToyFamily.guided is False
    c = toy_family.toy_config()
    family = _GuidedToy(c)
    batch = fields.example_batch(family.batch_spec(), 1, 16, 16)
    variables = family.inference_variables(family.init_state(jax.random.key(0), batch))
    inp = inference.Inpainter(family, variables)
    assert inp.guided
    image = np.full((16, 16, 3), 0.5, np.float32)
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12, 4:12] = 1
    sketch = np.zeros((16, 16), np.uint8)
    sketch[8, 2:14] = 255
    inp.inpaint(image, mask, sketch=sketch)
    np.testing.assert_array_equal(family.seen[GUIDE_KEY][0, ..., 0], sketch / 255)
    unguided = inference.Inpainter(toy_family.ToyFamily(c), variables)
    assert not unguided.guided
    try:
        unguided.inpaint(image, mask, sketch=sketch)
    except ValueError as e:
        assert "not trained with sketch guidance" in str(e)
    else:
        raise AssertionError("an unguided model took a sketch")
