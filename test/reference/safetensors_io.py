"""A small safetensors reader/writer (numpy), for the reference and the e2e tests.

Format: 8-byte little-endian header length N, N bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
then the raw little-endian tensor bytes (offsets relative to the end of the header).
Debian 12 has no python3-safetensors, so this is written from the format description.
"""
import json
import struct

import numpy as np

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}
_NAMES = {np.dtype(v).newbyteorder("<"): k for k, v in _DTYPES.items()}


class SafetensorsError(ValueError):
    pass


def load(path):
    """Returns (tensors: dict name -> numpy array, metadata: dict)."""
    with open(path, "rb") as f:
        data = f.read()
    return loads(data, path)


def loads(data, origin="<bytes>"):
    if len(data) < 8:
        raise SafetensorsError(f"{origin}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise SafetensorsError(f"{origin}: header length {n} exceeds the file")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{origin}: bad header: {e}")
    if not isinstance(header, dict):
        raise SafetensorsError(f"{origin}: header is not a JSON object")
    body = memoryview(data)[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        dt = info.get("dtype")
        if dt not in _DTYPES:
            raise SafetensorsError(f"{origin}: {name}: unsupported dtype {dt}")
        shape = [int(s) for s in info["shape"]]
        b, e = (int(x) for x in info["data_offsets"])
        dtype = np.dtype(_DTYPES[dt]).newbyteorder("<")
        count = int(np.prod(shape)) if shape else 1
        if not (0 <= b <= e <= len(body)) or e - b != count * dtype.itemsize:
            raise SafetensorsError(f"{origin}: {name}: data offsets {b}..{e} do not match shape {shape} {dt}")
        out[name] = np.frombuffer(body[b:e], dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(shape)
    return out, meta


def dumps(tensors, metadata=None):
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks = []
    off = 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dt = a.dtype.newbyteorder("<")
        if dt not in _NAMES:
            raise SafetensorsError(f"{name}: unsupported dtype {a.dtype}")
        raw = a.astype(dt, copy=False).tobytes()
        header[name] = {"dtype": _NAMES[dt], "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)  # align the data to 8 bytes, as the reference library does
    return struct.pack("<Q", len(h)) + h + b"".join(chunks)


def save(path, tensors, metadata=None):
    with open(path, "wb") as f:
        f.write(dumps(tensors, metadata))
