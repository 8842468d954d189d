"""The check that `set_conv_impl('native')` lets forward-mode differentiation through layers whose
default gradients are custom VJPs (which `jax.jvp` refuses)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest


def assert_native_jvp_is_the_gradient(f, variables, rng: np.random.Generator) -> None:
    """f(variables) -> scalar. With the default implementation jax.jvp of f is refused (a
    custom_vjp on the way); under `set_conv_impl('native')` its directional derivative along a
    random tangent equals the default (custom-VJP) gradient's inner product with the tangent."""
    from inpaintjax.layers.conv import set_conv_impl
    tangent = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), variables)
    # jitted (traced with the implementation in force at the call): one program each, and a fresh
    # jit per call (a jit reused after the refused trace would reuse its inner custom_vjp)
    grads = jax.jit(jax.grad(f))(variables)
    jvp = lambda: jax.jit(lambda v: jax.jvp(f, (v,), (tangent,)))  # noqa: E731
    with pytest.raises(TypeError, match="custom_vjp"):
        jvp()(variables)
    set_conv_impl("native")
    try:
        _, directional = jvp()(variables)
    finally:
        set_conv_impl(None)
    expected = sum(float(jnp.vdot(g, t)) for g, t in
                   zip(jax.tree.leaves(grads), jax.tree.leaves(tangent), strict=True))
    assert float(directional) == pytest.approx(expected, rel=1e-4)
