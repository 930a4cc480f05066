"""GGUF block quantisations Q8_0, Q4_0 and TQ2_0 in numpy, written from the
format's specification (docs/quantization.md), for the tests: the bytes of a
row-major [rows, k] float32 array (blocks along each row) and their values.

Every step rounds as ggml's reference quantisers do in float32: the scale d
(Q8_0: max|x| / 127; Q4_0: m / -8 with m the first value of largest
magnitude; TQ2_0: max|x|), 1/d (0 for d = 0), x * (1/d), then Q8_0 and TQ2_0
round half away from zero, Q4_0 truncates x/d + 8.5 toward zero and caps at
15; d is stored as float16 (round to nearest even) and values decode as
code * float32(d16).
"""
import numpy as np

BLOCK = {"q8_0": 32, "q4_0": 32, "tq2_0": 256}
BLOCK_BYTES = {"q8_0": 34, "q4_0": 18, "tq2_0": 66}
f32 = np.float32


def _round_away(v):
    """roundf / lroundf of float32 values (exact in float64)."""
    v = v.astype(np.float64)
    return (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int64)


def _inverse(d):
    with np.errstate(divide="ignore"):
        return np.where(d != 0, f32(1.0) / np.where(d != 0, d, f32(1.0)), f32(0.0)).astype(f32)


def quantize(x, kind):
    """(bytes of the blocks, per block scale d as float16, codes [blocks, B] as int)."""
    x = np.ascontiguousarray(x, dtype=f32)
    B = BLOCK[kind]
    assert x.shape[-1] % B == 0, (x.shape, kind)
    blocks = x.reshape(-1, B)
    amax = np.abs(blocks).max(axis=1)
    if kind == "q8_0":
        d = (amax / f32(127)).astype(f32)
        q = _round_away(blocks * _inverse(d)[:, None])
        codes = q
    elif kind == "q4_0":
        first = np.argmax(np.abs(blocks) == amax[:, None], axis=1)
        m = blocks[np.arange(len(blocks)), first]
        d = (m / f32(-8)).astype(f32)
        v = (blocks * _inverse(d)[:, None]).astype(f32) + f32(8.5)
        codes = np.minimum(15, np.trunc(v.astype(np.float64)).astype(np.int64))
        q = codes
    else:
        d = amax.astype(f32)
        codes = _round_away(blocks * _inverse(d)[:, None]) + 1
        q = codes
    d16 = d.astype(np.float16)
    out = bytearray()
    for i in range(len(blocks)):
        scale = d16[i].tobytes()
        if kind == "q8_0":
            out += scale + q[i].astype(np.int8).tobytes()
        elif kind == "q4_0":
            out += scale + (q[i][:16] | (q[i][16:] << 4)).astype(np.uint8).tobytes()
        else:
            packed = np.zeros(64, dtype=np.int64)
            for c in range(2):
                for n in range(4):
                    packed[32 * c:32 * c + 32] += (q[i][128 * c + 32 * n:128 * c + 32 * n + 32] & 3) << (2 * n)
            out += packed.astype(np.uint8).tobytes() + scale
    return bytes(out), d16, codes


def dequantize(x, kind):
    """The values a quantised x holds (float32, x's shape)."""
    x = np.asarray(x, dtype=f32)
    _, d16, codes = quantize(x, kind)
    bias = {"q8_0": 0, "q4_0": 8, "tq2_0": 1}[kind]
    vals = (codes - bias).astype(f32) * d16.astype(f32)[:, None]
    return vals.reshape(x.shape)
