"""Model families: one module per published system, registered by name (see base.py)."""

from inpaintjax.families.base import Family, get, register  # noqa: F401
