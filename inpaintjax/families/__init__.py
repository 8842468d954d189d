"""Model families: one module per published system, registered by name (see base.py)."""

from inpaintjax.families.base import (Family, FrozenWeightsError, Metric, WeightFormat,  # noqa: F401
                                      detect_weights, get, names, register)

# Built-in families register themselves on import.
from inpaintjax.families import deepfill_v2  # noqa: F401,E402
from inpaintjax.families import deepfill_v1  # noqa: F401,E402
from inpaintjax.families import pconv  # noqa: F401,E402
from inpaintjax.families import edgeconnect  # noqa: F401,E402
from inpaintjax.families import glcic  # noqa: F401,E402
from inpaintjax.families import shiftnet  # noqa: F401,E402
