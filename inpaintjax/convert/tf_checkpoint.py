"""Read TensorFlow (1.x and 2.x) checkpoints in pure Python: no TensorFlow needed.

A TF checkpoint "prefix" P names a tensor bundle:
  P.index                     an SSTable (LevelDB table format) mapping each variable name to a
                              BundleEntryProto (dtype, shape, shard id, byte offset and size, crc32c);
                              the empty key holds a BundleHeaderProto (number of shards, endianness)
  P.data-<i>-of-<n>           the raw tensor bytes of shard i, concatenated
A checkpoint *directory* holds a text file `checkpoint` whose `model_checkpoint_path` names P.

Every tensor read is checked against the crc32c TensorFlow stored for it in the index (masked as
LevelDB/TF mask it); a mismatch raises CheckpointError naming the tensor and the data file.

Only dense numeric tensors are decoded (float16/32/64, bfloat16, (u)int8/16/32/64, bool), which is
everything a model checkpoint holds; strings and partitioned (sliced) variables are reported by
name if asked for.
"""

from __future__ import annotations

import os
import re
import struct
from typing import Dict, Iterator, Tuple

import google_crc32c
import numpy as np

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48          # two BlockHandles padded to 40 bytes + 8-byte magic
_BLOCK_TRAILER_SIZE = 5    # 1-byte compression type + 4-byte masked crc32c

# tensorflow/core/framework/types.proto DataType -> numpy dtype (little endian).
_DTYPES = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"),
    5: np.dtype("<i2"), 6: np.dtype("i1"), 9: np.dtype("<i8"), 10: np.dtype("?"),
    17: np.dtype("<u2"), 19: np.dtype("<f2"), 22: np.dtype("<u4"), 23: np.dtype("<u8"),
}
_DT_BFLOAT16 = 14
_DT_NAMES = {7: "string", 8: "complex64", 18: "complex128", 20: "resource", 21: "variant"}
#: a data shard's file name, `<prefix>.data-<i>-of-<n>` (group 1: the prefix)
DATA_SHARD = re.compile(r"(.*)\.data-\d{5}-of-\d{5}$")


class CheckpointError(ValueError):
    """A TF checkpoint is missing, incomplete, corrupt or not in the tensor-bundle format."""


_CRC_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data) -> int:
    """CRC-32C (Castagnoli) of `data`, masked as TF stores it in BundleEntryProto.crc32c
    (tensorflow/core/lib/hash/crc32c.h `Mask`: rotate right by 15 bits, add 0xa282ead8)."""
    crc = google_crc32c.value(bytes(data))
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _CRC_MASK_DELTA) & 0xFFFFFFFF


# ----------------------------------------------------------------------------------------------
# Low-level decoding: varints, protobuf wire format, snappy, SSTable blocks.

def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointError("truncated varint in checkpoint index")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf: bytes) -> Iterator[Tuple[int, int, object]]:
    """Yields (field number, wire type, value) of a serialized protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value = buf[pos:pos + n]
            pos += n
        elif wire == 5:
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire} in checkpoint index")
        yield field, wire, value


def _snappy_decompress(buf: bytes) -> bytes:
    """Raw snappy block decompression (the optional block compression of TF tables)."""
    size, pos = _varint(buf, 0)
    out = bytearray()
    while pos < len(buf):
        tag = buf[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            n = tag >> 2
            if n >= 60:
                extra = n - 59
                n = int.from_bytes(buf[pos:pos + extra], "little")
                pos += extra
            n += 1
            out += buf[pos:pos + n]
            pos += n
            continue
        if kind == 1:
            length = 4 + ((tag >> 2) & 7)
            offset = ((tag >> 5) << 8) | buf[pos]
            pos += 1
        elif kind == 2:
            length = (tag >> 2) + 1
            offset = int.from_bytes(buf[pos:pos + 2], "little")
            pos += 2
        else:
            length = (tag >> 2) + 1
            offset = int.from_bytes(buf[pos:pos + 4], "little")
            pos += 4
        if offset == 0 or offset > len(out):
            raise CheckpointError("corrupt snappy block in checkpoint index")
        start = len(out) - offset
        for i in range(length):  # byte by byte: copies may overlap their own output
            out.append(out[start + i])
    if len(out) != size:
        raise CheckpointError("corrupt snappy block in checkpoint index (size mismatch)")
    return bytes(out)


def _read_block(data: bytes, offset: int, size: int) -> bytes:
    block = data[offset:offset + size]
    if len(block) != size or offset + size + _BLOCK_TRAILER_SIZE > len(data):
        raise CheckpointError("checkpoint index is truncated (block past end of file)")
    compression = data[offset + size]
    if compression == 0:
        return block
    if compression == 1:
        return _snappy_decompress(block)
    raise CheckpointError(f"unknown block compression type {compression} in checkpoint index")


def _block_entries(block: bytes) -> Iterator[Tuple[bytes, bytes]]:
    """Key/value pairs of one table block (prefix-compressed keys, restart array at the end)."""
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * num_restarts
    pos = 0
    key = b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + vlen]
        pos += vlen


def read_table(path: str) -> Dict[bytes, bytes]:
    """All key/value pairs of an SSTable file (a checkpoint's .index)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < _FOOTER_SIZE:
        raise CheckpointError(f"{path} is too short to be a TF checkpoint index ({len(data)} bytes)")
    footer = data[-_FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, 40)[0] != _TABLE_MAGIC:
        raise CheckpointError(f"{path} is not a TF checkpoint index (bad table magic number)")
    _, pos = _varint(footer, 0)            # metaindex offset (unused: no meta blocks needed)
    _, pos = _varint(footer, pos)          # metaindex size
    index_offset, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)
    table = {}
    for _, handle in _block_entries(_read_block(data, index_offset, index_size)):
        off, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        for key, value in _block_entries(_read_block(data, off, size)):
            table[key] = value
    return table


# ----------------------------------------------------------------------------------------------
# Bundle entries.

def _parse_shape(buf: bytes) -> Tuple[int, ...]:
    dims = []
    for field, _, value in _proto_fields(buf):
        if field == 2:  # Dim
            size = 0
            for f, _, v in _proto_fields(value):
                if f == 1:
                    size = v
            dims.append(size)
        elif field == 3 and value:
            raise CheckpointError("tensor of unknown rank in checkpoint")
    return tuple(dims)


def _parse_entry(buf: bytes) -> dict:
    entry = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0, "sliced": False,
             "crc32c": None}
    for field, _, value in _proto_fields(buf):
        if field == 1:
            entry["dtype"] = value
        elif field == 2:
            entry["shape"] = _parse_shape(value)
        elif field == 3:
            entry["shard_id"] = value
        elif field == 4:
            entry["offset"] = value
        elif field == 5:
            entry["size"] = value
        elif field == 6:
            entry["crc32c"] = value
        elif field == 7:
            entry["sliced"] = True
    return entry


def resolve_prefix(path: str) -> str:
    """The bundle prefix of a checkpoint directory (via its `checkpoint` file), a prefix, or a
    path to the prefix's .index / .data file. Raises CheckpointError naming what was expected."""
    path = os.fspath(path)
    expected = ("a TF checkpoint directory holding a `checkpoint` text file plus <prefix>.index and "
                "<prefix>.data-00000-of-00001, or the <prefix> itself")
    if os.path.isdir(path):
        state = os.path.join(path, "checkpoint")
        if os.path.isfile(state):
            with open(state) as f:
                text = f.read()
            m = re.search(r'^model_checkpoint_path:\s*"(.*)"\s*$', text, re.MULTILINE)
            if not m:
                raise CheckpointError(f"{state} has no model_checkpoint_path line")
            name = m.group(1)
            candidates = [name if os.path.isabs(name) else os.path.join(path, name),
                          os.path.join(path, os.path.basename(name))]  # directory was moved
            for prefix in candidates:
                if os.path.isfile(prefix + ".index"):
                    return prefix
            raise CheckpointError(f"{state} names checkpoint {name!r} but {candidates[-1]}.index "
                                  f"does not exist; expected {expected}")
        indexes = sorted(f for f in os.listdir(path) if f.endswith(".index"))
        if len(indexes) == 1:
            return os.path.join(path, indexes[0][:-len(".index")])
        shards = sorted(f for f in os.listdir(path) if DATA_SHARD.match(f))
        if not indexes and shards:
            index = DATA_SHARD.match(shards[0]).group(1) + ".index"
            raise CheckpointError(f"{path} holds {', '.join(shards)} but not {index} (nor a "
                                  f"`checkpoint` file): the checkpoint is incomplete; fetch its "
                                  f".index file too (expected {expected})")
        if not indexes:
            raise CheckpointError(f"{path} holds no TF checkpoint (no `checkpoint` file and no "
                                  f"*.index file); expected {expected}. (The DeepFill release "
                                  f"ships `checkpoint.txt`: rename it to `checkpoint`.)")
        raise CheckpointError(f"{path} holds several checkpoints {indexes} and no `checkpoint` "
                              f"file to choose one: pass the prefix, e.g. {os.path.join(path, indexes[-1][:-6])}")
    if path.endswith(".index") and os.path.isfile(path):
        return path[:-len(".index")]
    m = DATA_SHARD.match(path)
    if m and os.path.isfile(path):
        if not os.path.isfile(m.group(1) + ".index"):
            raise CheckpointError(f"{path} is a TF checkpoint's data but {m.group(1)}.index is "
                                  f"missing: the checkpoint is incomplete; fetch its .index file too")
        return m.group(1)
    if os.path.isfile(path + ".index"):
        return path
    raise CheckpointError(f"no TF checkpoint at {path}: expected {expected} "
                          f"({path}.index does not exist)")


class TFCheckpointReader:
    """Lists and reads the tensors of one TF checkpoint, e.g.

        r = TFCheckpointReader('release_places2_256')      # a directory or a prefix
        r.shapes()['inpaint_net/conv1/kernel']              # (5, 5, 5, 48)
        r.get('inpaint_net/conv1/kernel')                   # numpy float32 array
    """

    def __init__(self, path):
        self.prefix = resolve_prefix(path)
        table = read_table(self.prefix + ".index")
        header = table.pop(b"", b"")
        self.num_shards = 1
        for field, _, value in _proto_fields(header):
            if field == 1:
                self.num_shards = value
            elif field == 2 and value != 0:
                raise CheckpointError(f"{self.prefix}.index: big-endian checkpoints are not supported")
        self._entries = {k.decode("utf-8"): _parse_entry(v) for k, v in table.items()}
        self._shards: Dict[int, np.memmap] = {}

    def shapes(self) -> Dict[str, Tuple[int, ...]]:
        """Every variable name -> its shape."""
        return {k: e["shape"] for k, e in self._entries.items()}

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def keys(self):
        return self._entries.keys()

    def _shard_name(self, i: int) -> str:
        return f"{self.prefix}.data-{i:05d}-of-{self.num_shards:05d}"

    def _shard(self, i: int) -> np.ndarray:
        if i not in self._shards:
            fname = self._shard_name(i)
            if not os.path.isfile(fname):
                raise CheckpointError(f"checkpoint data file {fname} is missing (the .index names "
                                      f"{self.num_shards} data shard(s))")
            self._shards[i] = np.memmap(fname, dtype=np.uint8, mode="r")
        return self._shards[i]

    def get(self, name: str) -> np.ndarray:
        """The tensor `name` as a new numpy array (bfloat16 is widened to float32)."""
        if name not in self._entries:
            raise KeyError(f"{name!r} is not in checkpoint {self.prefix}")
        e = self._entries[name]
        if e["sliced"]:
            raise CheckpointError(f"{name} is a partitioned variable; not supported")
        raw = np.asarray(self._shard(e["shard_id"])[e["offset"]:e["offset"] + e["size"]])
        if len(raw) != e["size"]:
            raise CheckpointError(f"{name}: data file {self._shard_name(e['shard_id'])} is truncated")
        if e["crc32c"] is not None and masked_crc32c(raw) != e["crc32c"]:
            raise CheckpointError(
                f"tensor {name!r} in {self._shard_name(e['shard_id'])} is corrupt: its crc32c "
                f"does not match the one TensorFlow recorded in {self.prefix}.index (a damaged "
                f"download or disk error; fetch the checkpoint again)")
        n = int(np.prod(e["shape"], dtype=np.int64))
        if e["dtype"] == _DT_BFLOAT16:
            bits = np.frombuffer(raw.tobytes(), "<u2").astype(np.uint32) << 16
            return bits.view(np.float32).reshape(e["shape"])
        if e["dtype"] not in _DTYPES:
            kind = _DT_NAMES.get(e["dtype"], f"DataType {e['dtype']}")
            raise CheckpointError(f"{name} has dtype {kind}, which this reader does not decode")
        dt = _DTYPES[e["dtype"]]
        if dt.itemsize * n != e["size"]:
            raise CheckpointError(f"{name}: {e['size']} bytes for shape {e['shape']} of {dt}")
        return np.frombuffer(raw.tobytes(), dt).reshape(e["shape"]).astype(dt.newbyteorder("="))

    def verify(self) -> None:
        """Read every decodable tensor once, checking its crc32c (CheckpointError on a mismatch)."""
        self.to_dict()

    def to_dict(self, prefix: str = "") -> Dict[str, np.ndarray]:
        """All decodable tensors whose name starts with `prefix`."""
        return {k: self.get(k) for k in sorted(self._entries) if k.startswith(prefix)
                and not self._entries[k]["sliced"]
                and (self._entries[k]["dtype"] in _DTYPES or self._entries[k]["dtype"] == _DT_BFLOAT16)}
