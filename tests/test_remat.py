"""`config.remat` (rematerialised blocks) in every family: each family hands the switch to its
generators, a remat network's training program really holds rematerialised (checkpointed)
blocks, and it gives the same loss and the same gradients as the plain network."""
import importlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import family_steps as fs
from inpaintjax.families import get as get_family
from inpaintjax.models.edgeconnect import EdgeGenerator
from inpaintjax.models.pconv import PConvUNet

GENERATORS = {"deepfill_v2": ("generator",), "deepfill_v1": ("generator",), "pconv": ("net",),
              "edgeconnect": ("edge_generator", "inpaint_generator")}


@pytest.mark.parametrize("name", fs.NAMES)
@pytest.mark.parametrize("remat", [True, False])
def test_every_family_hands_remat_to_its_generators(name, remat):
    config = importlib.import_module(f"configs.{name}").get_config(f"{fs.ARGS[name]},remat={remat}")
    family = get_family(name)(config)
    assert [getattr(family, g).remat for g in GENERATORS[name]] == [remat] * len(GENERATORS[name])


def _has_remat(program: str) -> bool:
    # jax.checkpoint (nn.remat) shows in a jaxpr as the `remat2` (older: `checkpoint`) primitive
    return re.search(r"\b(remat2?|checkpoint)\[", program) is not None


NETWORKS = {
    # network(remat), its inputs from x [B, 16, 16, 4], the collections a training call updates
    "pconv": (lambda r: PConvUNet(levels=4, width=8, remat=r),
              lambda x: (x[..., :3], x[..., 3:4]), ["batch_stats"]),
    # G1 with its spectral-norm power iteration (a mutable collection inside the remat blocks);
    # G2 is built by the same code without spectral norm
    "edgeconnect_generator": (lambda r: EdgeGenerator(residual_blocks=1, remat=r),
                              lambda x: (x[..., :3],), ["batch_stats"]),
}


@pytest.mark.parametrize("net", sorted(NETWORKS))
def test_remat_gives_the_same_loss_and_gradients(net):
    build, inputs_of, mutable = NETWORKS[net]
    x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 4))
    x = x.at[..., 3:4].set((x[..., 3:4] > 0.7).astype(jnp.float32))  # a hole mask channel
    args = inputs_of(x)
    plain, remat = build(False), build(True)
    variables = jax.jit(plain.init)(jax.random.key(1), *args)
    # the same variable tree (names and shapes): checkpoints move between the two
    assert jax.tree.structure(variables) == jax.tree.structure(
        jax.eval_shape(remat.init, jax.random.key(1), *args))

    def loss_and_grads(module):
        def loss(params):
            out, _ = module.apply({**variables, "params": params}, *args, train=True,
                                  mutable=mutable)
            y = out[0] if isinstance(out, tuple) else out
            weights = jnp.sin(jnp.arange(y.size, dtype=jnp.float32)).reshape(y.shape)
            # every output element weighted differently; the aux: the sum of the terms' sizes
            return jnp.sum(y * weights), jnp.sum(jnp.abs(y * weights))
        traced = jax.jit(jax.value_and_grad(loss, has_aux=True)).trace(variables["params"])  # traced once
        return traced.lower().compile()(variables["params"]), _has_remat(str(traced.jaxpr))

    ((value, size), grads), plain_has_remat = loss_and_grads(plain)
    ((value_r, _), grads_r), remat_has_remat = loss_and_grads(remat)
    assert remat_has_remat and not plain_has_remat
    # the loss sums terms of both signs (PConv's: about 820 in size to -1.7): float32 rounding
    # is relative to the terms' size, not to the cancelled sum
    np.testing.assert_allclose(float(value_r), float(value), rtol=0, atol=1e-6 * float(size))
    assert jax.tree.structure(grads) == jax.tree.structure(grads_r)
    flat, flat_r = ([np.asarray(g) for g in jax.tree.leaves(t)] for t in (grads, grads_r))
    assert sum(float(np.abs(g).sum()) for g in flat) > 0
    # the same arithmetic, possibly fused in another order: float32 rounding only (relative to
    # the largest gradient: some are exactly 0 in theory, e.g. a bias before InstanceNorm). The
    # U-Net's 1x1 bottom level normalises over the batch's two values, which magnifies rounding
    # differences in the layers above it to a few 1e-4 (seen: 8e-4 on 4 of 18,432 elements when
    # XLA fuses the two programs differently); a remat defect moves gradients by their own size.
    scale = max(float(np.abs(g).max()) for g in flat)
    for g, g_r in zip(flat, flat_r, strict=True):
        np.testing.assert_allclose(g_r, g, rtol=2e-3, atol=1e-5 * scale)


@pytest.mark.parametrize("name", ["glcic", "shiftnet"])
def test_families_without_remat_blocks_refuse_it(name):
    config = importlib.import_module(f"configs.{name}").get_config("test")
    config.remat = True
    with pytest.raises(ValueError, match=r"config.remat=True: the .* --config.remat=False"):
        get_family(name)(config)
    config.remat = False
    get_family(name)(config)
