"""Config file for the toy test family: `--config tests/toy_config.py`."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import toy_family  # noqa: E402  (registers 'toy')


def get_config(arg: str = ""):
    return toy_family.toy_config(arg)
