"""A tiny MessagePack encoder and decoder for discovery beacons.

This is hand-written on purpose: the package must have ``websockets`` as its only runtime
dependency, and the beacon payloads it reads and writes use only a small subset of
MessagePack — maps, arrays, strings, integers, nil, booleans and binary (floats are decoded
too, for robustness). It follows the specification at https://msgpack.org (the same format
the Rust node writes with ``rmp_serde``): the smallest encoding is always chosen, strings are
UTF-8 ``str`` family, ``bytes`` are the ``bin`` family.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["pack", "unpack", "DecodeError"]


class DecodeError(ValueError):
    """The bytes are not exactly one MessagePack value of the supported subset."""


def pack(value: Any) -> bytes:
    """Encodes ``value`` (dict, list/tuple, str, int, None, bool, bytes, float)."""
    out = bytearray()
    _pack_into(out, value)
    return bytes(out)


def _pack_into(out: bytearray, v: Any) -> None:
    """Appends the encoding of ``v`` to ``out``."""
    if v is None:
        out.append(0xC0)
    elif v is True:
        out.append(0xC3)
    elif v is False:
        out.append(0xC2)
    elif isinstance(v, int):
        _pack_int(out, v)
    elif isinstance(v, float):
        out.append(0xCB)
        out += struct.pack(">d", v)
    elif isinstance(v, str):
        data = v.encode("utf-8")
        n = len(data)
        if n < 32:
            out.append(0xA0 | n)
        elif n < 0x100:
            out += bytes((0xD9, n))
        elif n < 0x10000:
            out.append(0xDA)
            out += struct.pack(">H", n)
        else:
            out.append(0xDB)
            out += struct.pack(">I", n)
        out += data
    elif isinstance(v, (bytes, bytearray, memoryview)):
        data = bytes(v)
        n = len(data)
        if n < 0x100:
            out += bytes((0xC4, n))
        elif n < 0x10000:
            out.append(0xC5)
            out += struct.pack(">H", n)
        else:
            out.append(0xC6)
            out += struct.pack(">I", n)
        out += data
    elif isinstance(v, (list, tuple)):
        n = len(v)
        if n < 16:
            out.append(0x90 | n)
        elif n < 0x10000:
            out.append(0xDC)
            out += struct.pack(">H", n)
        else:
            out.append(0xDD)
            out += struct.pack(">I", n)
        for item in v:
            _pack_into(out, item)
    elif isinstance(v, dict):
        n = len(v)
        if n < 16:
            out.append(0x80 | n)
        elif n < 0x10000:
            out.append(0xDE)
            out += struct.pack(">H", n)
        else:
            out.append(0xDF)
            out += struct.pack(">I", n)
        for k, item in v.items():
            _pack_into(out, k)
            _pack_into(out, item)
    else:
        raise TypeError(f"cannot encode {type(v).__name__} as MessagePack")


def _pack_int(out: bytearray, v: int) -> None:
    """Appends integer ``v`` in its smallest MessagePack form."""
    if 0 <= v < 0x80:
        out.append(v)
    elif -32 <= v < 0:
        out.append(v & 0xFF)
    elif v >= 0:
        if v < 0x100:
            out += bytes((0xCC, v))
        elif v < 0x10000:
            out.append(0xCD)
            out += struct.pack(">H", v)
        elif v < 0x100000000:
            out.append(0xCE)
            out += struct.pack(">I", v)
        elif v < 0x10000000000000000:
            out.append(0xCF)
            out += struct.pack(">Q", v)
        else:
            raise OverflowError(f"{v} does not fit in a MessagePack uint64")
    else:
        if v >= -0x80:
            out.append(0xD0)
            out += struct.pack(">b", v)
        elif v >= -0x8000:
            out.append(0xD1)
            out += struct.pack(">h", v)
        elif v >= -0x80000000:
            out.append(0xD2)
            out += struct.pack(">i", v)
        elif v >= -0x8000000000000000:
            out.append(0xD3)
            out += struct.pack(">q", v)
        else:
            raise OverflowError(f"{v} does not fit in a MessagePack int64")


def unpack(data: bytes) -> Any:
    """Decodes exactly one value; trailing bytes or truncation raise :class:`DecodeError`."""
    reader = _Reader(bytes(data))
    value = reader.value(0)
    if reader.pos != len(reader.data):
        raise DecodeError(f"{len(reader.data) - reader.pos} trailing bytes after the value")
    return value


class _Reader:
    """A cursor over the bytes being decoded."""

    #: Nesting deeper than this is refused (a datagram is small; this bounds recursion).
    MAX_DEPTH = 64

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes."""
        end = self.pos + n
        if end > len(self.data):
            raise DecodeError("truncated MessagePack data")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def fmt(self, f: str) -> Any:
        """The next fixed-size big-endian number of struct format ``f``."""
        return struct.unpack(">" + f, self.take(struct.calcsize(">" + f)))[0]

    def value(self, depth: int) -> Any:
        """Decodes the next value."""
        if depth > self.MAX_DEPTH:
            raise DecodeError("MessagePack nesting too deep")
        b = self.take(1)[0]
        if b < 0x80:
            return b
        if b >= 0xE0:
            return b - 0x100
        if 0x80 <= b <= 0x8F:
            return self.map(b & 0x0F, depth)
        if 0x90 <= b <= 0x9F:
            return self.array(b & 0x0F, depth)
        if 0xA0 <= b <= 0xBF:
            return self.text(b & 0x1F)
        simple = {
            0xC0: None,
            0xC2: False,
            0xC3: True,
        }
        if b in simple:
            return simple[b]
        sized: dict[int, tuple[str, str]] = {
            0xC4: ("B", "bin"), 0xC5: ("H", "bin"), 0xC6: ("I", "bin"),
            0xD9: ("B", "str"), 0xDA: ("H", "str"), 0xDB: ("I", "str"),
            0xDC: ("H", "array"), 0xDD: ("I", "array"),
            0xDE: ("H", "map"), 0xDF: ("I", "map"),
        }  # fmt: skip
        if b in sized:
            f, kind = sized[b]
            n = self.fmt(f)
            if kind == "bin":
                return self.take(n)
            if kind == "str":
                return self.text(n)
            if kind == "array":
                return self.array(n, depth)
            return self.map(n, depth)
        numbers = {
            0xCA: "f", 0xCB: "d",
            0xCC: "B", 0xCD: "H", 0xCE: "I", 0xCF: "Q",
            0xD0: "b", 0xD1: "h", 0xD2: "i", 0xD3: "q",
        }  # fmt: skip
        if b in numbers:
            return self.fmt(numbers[b])
        raise DecodeError(f"unsupported MessagePack type byte 0x{b:02x}")

    def text(self, n: int) -> str:
        """A UTF-8 string of ``n`` bytes."""
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError as e:
            raise DecodeError(f"invalid UTF-8 in a MessagePack string: {e}") from None

    def array(self, n: int, depth: int) -> list[Any]:
        """An array of ``n`` values."""
        return [self.value(depth + 1) for _ in range(n)]

    def map(self, n: int, depth: int) -> dict[Any, Any]:
        """A map of ``n`` pairs (keys must be hashable: lists become tuples)."""
        out: dict[Any, Any] = {}
        for _ in range(n):
            k = self.value(depth + 1)
            if isinstance(k, list):
                k = tuple(k)
            elif isinstance(k, dict):
                raise DecodeError("a map as a MessagePack map key is not supported")
            try:
                out[k] = self.value(depth + 1)
            except TypeError:
                raise DecodeError("unhashable MessagePack map key") from None
        return out
