"""Integrity and clean failures: TF checksums (files made or copied by the test)."""

import os
import shutil

import numpy as np
import pytest

from inpaintjax.convert import tf_checkpoint
from inpaintjax.convert.tf_checkpoint import CheckpointError, TFCheckpointReader

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
TF_CKPT = os.path.join(FIXTURES, "deepfill_v2_tf")    # written by TensorFlow (make_tf_checkpoint.py)


def test_crc32c_check_value_and_tensorflow_checksums():
    # the CRC-32C check value of "123456789" (RFC 3720 B.4), then TF's mask by hand:
    # rotate 0xE3069283 right by 15 bits = 0x2507C60D, plus 0xA282EAD8 = 0xC78AB0E5
    assert tf_checkpoint.masked_crc32c(b"123456789") == 0xC78AB0E5
    r = TFCheckpointReader(TF_CKPT)
    assert all(e["crc32c"] is not None for e in r._entries.values())   # TF recorded every one
    r.verify()                                                          # and all of them match


def test_bit_flipped_tf_checkpoint_names_the_tensor_and_the_file(tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(TF_CKPT, ckpt)
    r = TFCheckpointReader(str(ckpt))
    name = "inpaint_net/conv1/kernel"
    e = r._entries[name]
    data = ckpt / "snap-4000.data-00000-of-00001"
    buf = bytearray(data.read_bytes())
    buf[e["offset"] + e["size"] // 2] ^= 0x10                           # one bit of one weight
    data.write_bytes(bytes(buf))
    r = TFCheckpointReader(str(ckpt))
    with pytest.raises(CheckpointError, match=r"tensor 'inpaint_net/conv1/kernel' in .*snap-4000"
                                              r"\.data-00000-of-00001 is corrupt: its crc32c"):
        r.get(name)
    assert np.isfinite(r.get("inpaint_net/conv1/bias")).all()          # the others still read
    with pytest.raises(CheckpointError, match="conv1/kernel"):
        r.verify()
    from inpaintjax.convert.deepfill import from_tf_checkpoint
    with pytest.raises(CheckpointError, match="is corrupt"):
        from_tf_checkpoint(str(ckpt), version=2)
