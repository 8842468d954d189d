"""The entry points' persistent compilation cache (`inpaintjax.compile_cache`): where it goes, what
turns it off, and that a user's JAX_COMPILATION_CACHE_DIR wins. (The test session sets its own
JAX_COMPILATION_CACHE_DIR, so these tests clear it for a moment and put it back.)"""

import jax
import pytest

from inpaintjax import compile_cache


@pytest.fixture
def no_cache_dir():
    saved = (jax.config.jax_compilation_cache_dir, jax.config.jax_compilation_cache_max_size)
    jax.config.update("jax_compilation_cache_dir", None)
    yield
    jax.config.update("jax_compilation_cache_dir", saved[0])
    jax.config.update("jax_compilation_cache_max_size", saved[1])


def test_the_cache_goes_where_inpaintjax_compilation_cache_says(no_cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("INPAINTJAX_COMPILATION_CACHE", str(tmp_path / "cc"))
    assert compile_cache.enable() == str(tmp_path / "cc")
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "cc") and (tmp_path / "cc").is_dir()
    assert jax.config.jax_compilation_cache_max_size == 4 << 30  # bounded: least recently used evicted


def test_the_default_folder_and_off(no_cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("INPAINTJAX_COMPILATION_CACHE", raising=False)
    assert compile_cache.enable() == str(tmp_path / ".cache" / "inpaintjax" / "jax-compilation")
    jax.config.update("jax_compilation_cache_dir", None)
    for off in ("off", "0", "no"):
        monkeypatch.setenv("INPAINTJAX_COMPILATION_CACHE", off)
        assert compile_cache.enable() is None and jax.config.jax_compilation_cache_dir is None


def test_a_users_jax_cache_dir_is_kept(no_cache_dir, tmp_path, monkeypatch):
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "mine"))
    monkeypatch.setenv("INPAINTJAX_COMPILATION_CACHE", str(tmp_path / "ours"))
    assert compile_cache.enable() == str(tmp_path / "mine")
    assert not (tmp_path / "ours").exists()
