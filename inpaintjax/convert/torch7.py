"""A small reader of Torch7's binary serialisation (`torch.save(file, obj)`, the `.t7` files of
Lua Torch), pure Python and NumPy: no Lua, no pickle, nothing in the file is run.

    obj = load('completionnet_places2.t7')     # {'model': TorchObject('nn.Sequential'), 'mean': ...}

What it reads (torch/torch7 `File.lua` `writeObject`, binary mode, little endian, 8-byte longs as
Torch writes them on 64-bit Linux):
  nil, number (float64; integral values come back as int), boolean (int32), string (int32
  length + bytes, returned as str), table (int32 reference id, int32 count, key/value pairs;
  returned as a dict), torch object (reference id, "V <version>" string, class name, payload).
  Tensors of any Float/Double/Cuda/CudaDouble/Long/Int/Short/Char/Byte type (ndim, sizes and
  strides as int64, 1-based storage offset, then the storage object) come back as NumPy arrays
  (CUDA float tensors as float32); storages (int64 size + raw data) as flat arrays. Any other
  class (nn modules) comes back as a `TorchObject` holding its field table. Shared references
  (the same table or tensor written twice) resolve to the same Python object.
Not read: serialised Lua functions (the nn models here hold none) and tds containers.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

TYPE_NIL, TYPE_NUMBER, TYPE_STRING, TYPE_TABLE, TYPE_TORCH, TYPE_BOOLEAN = 0, 1, 2, 3, 4, 5
_FUNCTIONS = (6, 7, 8)

#: element dtype of each tensor/storage class prefix
_DTYPES = {
    "torch.Double": np.float64, "torch.Float": np.float32, "torch.Half": np.float16,
    "torch.Long": np.int64, "torch.Int": np.int32, "torch.Short": np.int16,
    "torch.Char": np.int8, "torch.Byte": np.uint8,
    "torch.Cuda": np.float32, "torch.CudaDouble": np.float64, "torch.CudaLong": np.int64,
    "torch.CudaInt": np.int32, "torch.CudaByte": np.uint8,
}


class Torch7FormatError(ValueError):
    """The bytes are not a Torch7 binary file this reader understands."""


class TorchObject:
    """An instance of a Torch class that is not a tensor or storage (e.g. `nn.SpatialConvolution`):
    `typename` ('nn.SpatialConvolution') and `fields` (its Lua table as a dict; also reachable as
    attributes: `obj.weight`)."""

    def __init__(self, typename: str, fields: Any):
        self.typename = typename
        self.fields = fields if isinstance(fields, dict) else {"_": fields}

    def __getattr__(self, name):
        fields = self.__dict__.get("fields", {})
        if name in fields:
            return fields[name]
        raise AttributeError(f"{self.__dict__.get('typename', 'TorchObject')} has no field {name!r}")

    def get(self, name, default=None):
        return self.fields.get(name, default)

    def __repr__(self):
        return f"TorchObject({self.typename!r}, fields={sorted(map(str, self.fields))})"


def _split_class(name: str) -> tuple[str, str] | None:
    """'torch.CudaTensor' -> ('torch.Cuda', 'Tensor'); None for non-tensor classes."""
    for kind in ("Tensor", "Storage"):
        if name.startswith("torch.") and name.endswith(kind):
            prefix = name[: -len(kind)]
            if prefix in _DTYPES:
                return prefix, kind
    return None


class _Reader:
    def __init__(self, data: bytes, where: str):
        self.buf = memoryview(data)
        self.pos = 0
        self.where = where
        self.refs: dict[int, Any] = {}

    def _take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise Torch7FormatError(f"{self.where}: truncated at byte {self.pos} (wanted {n} more "
                                    f"bytes of {len(self.buf)}); not a complete Torch7 file")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        return struct.unpack("<i", self._take(4))[0]

    def long(self) -> int:
        return struct.unpack("<q", self._take(8))[0]

    def longs(self, n: int) -> list[int]:
        return list(struct.unpack(f"<{n}q", self._take(8 * n)))

    def string(self) -> str:
        n = self.int()
        return bytes(self._take(n)).decode("latin-1")

    def read(self) -> Any:
        at = self.pos
        tag = self.int()
        if tag == TYPE_NIL:
            return None
        if tag == TYPE_NUMBER:
            v = struct.unpack("<d", self._take(8))[0]
            return int(v) if v.is_integer() and abs(v) < 2 ** 53 else v
        if tag == TYPE_BOOLEAN:
            return self.int() == 1
        if tag == TYPE_STRING:
            return self.string()
        if tag in (TYPE_TABLE, TYPE_TORCH):
            ref = self.int()
            if ref in self.refs:
                return self.refs[ref]
            return self._table(ref) if tag == TYPE_TABLE else self._torch(ref)
        if tag in _FUNCTIONS:
            raise Torch7FormatError(f"{self.where}: a serialised Lua function at byte {at}; this "
                                    "reader reads data and nn modules only")
        raise Torch7FormatError(f"{self.where}: unknown type tag {tag} at byte {at}; not a Torch7 "
                                "binary file (or one written in ascii mode)")

    def _table(self, ref: int) -> dict:
        out: dict = {}
        self.refs[ref] = out
        n = self.int()
        if n < 0:
            raise Torch7FormatError(f"{self.where}: table with {n} entries at byte {self.pos}")
        for _ in range(n):
            key = self.read()
            out[key] = self.read()
        return out

    def _torch(self, ref: int) -> Any:
        version = self.string()
        if version.startswith("V "):
            name = self.string()
        else:  # files of Torch before versioned classes: the class name comes first
            name = version
        kind = _split_class(name)
        if kind is None:
            obj = TorchObject(name, {})
            self.refs[ref] = obj
            fields = self.read()
            obj.fields = fields if isinstance(fields, dict) else {"_": fields}
            return obj
        prefix, what = kind
        dtype = np.dtype(_DTYPES[prefix]).newbyteorder("<")
        if what == "Storage":
            size = self.long()
            arr = np.frombuffer(self._take(size * dtype.itemsize), dtype).astype(dtype.newbyteorder("="))
            self.refs[ref] = arr
            return arr
        ndim = self.int()
        sizes, strides = self.longs(ndim), self.longs(ndim)
        offset = self.long() - 1
        storage = self.read()
        if ndim == 0 or storage is None:
            arr = np.zeros((0,), dtype.newbyteorder("="))
        else:
            if not isinstance(storage, np.ndarray):
                raise Torch7FormatError(f"{self.where}: {name} without a storage")
            extent = offset + sum((s - 1) * st for s, st in zip(sizes, strides)) + 1
            if offset < 0 or extent > storage.size or min(strides) < 0:
                raise Torch7FormatError(f"{self.where}: {name} of size {sizes} (strides {strides}, "
                                        f"offset {offset}) overruns its storage of {storage.size}")
            isz = storage.itemsize
            arr = np.lib.stride_tricks.as_strided(storage[offset:], shape=sizes,
                                                  strides=[st * isz for st in strides]).copy()
        self.refs[ref] = arr
        return arr


def loads(data: bytes, where: str = "<bytes>") -> Any:
    """The object serialised in `data` (see the module docstring for what each type becomes)."""
    return _Reader(bytes(data), where).read()


def load(path: str) -> Any:
    """The object in the Torch7 binary file at `path`."""
    with open(path, "rb") as f:
        data = f.read()
    return loads(data, path)


def looks_like_torch7(path: str) -> bool:
    """Cheap check on the first bytes: a top-level table or torch object (type tag 3 or 4 and
    reference id 1), as `torch.save` writes."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    if len(head) < 8:
        return False
    tag, ref = struct.unpack("<ii", head)
    return tag in (TYPE_TABLE, TYPE_TORCH) and ref == 1
