"""Bounded byte reading for the codecs.

:class:`Reader` is the pull half of every codec: each read checks the bytes are there and
raises :class:`~gmpls.errors.DecodeError` naming the field when they are not, so no codec
can read past its buffer or loop without advancing. The push half is plain ``struct`` and
``bytes`` concatenation: encoders build bytes, they never need a buffer object.
"""

from __future__ import annotations

import builtins
import ipaddress
import struct

from gmpls.errors import DecodeError

_U8 = struct.Struct("!B")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_F32 = struct.Struct("!f")

#: addresses decoded so far, by their four bytes: a network has few of them, and an
#: ``IPv4Address`` made from bytes costs more than a look-up (the objects are immutable,
#: so every decoder may share them); cleared when it grows past :data:`_IPV4_MAX`
_IPV4: dict[builtins.bytes, ipaddress.IPv4Address] = {}
_IPV4_MAX = 1 << 16


def ipv4_of(packed: builtins.bytes) -> ipaddress.IPv4Address:
    """The address whose four bytes are ``packed`` (``IPv4Address(packed)``, shared)."""
    a = _IPV4.get(packed)
    if a is None:
        a = ipaddress.IPv4Address(packed)
        if len(_IPV4) >= _IPV4_MAX:
            _IPV4.clear()
        _IPV4[bytes(packed)] = a
    return a


class Reader:
    """A cursor over an immutable byte string that never reads past ``end``."""

    __slots__ = ("code", "data", "end", "pos", "where")

    def __init__(
        self,
        data: bytes,
        where: str,
        pos: int = 0,
        end: int | None = None,
        code: tuple[int, int] | None = None,
    ) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end
        if self.end > len(data) or pos > self.end:
            raise DecodeError(where, f"needs {self.end - pos} bytes, has {len(data) - pos}", code)
        self.where = where
        #: protocol error code to attach to every error raised through this reader
        self.code = code

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def at_end(self) -> bool:
        return self.pos >= self.end

    def fail(self, field: str, reason: str) -> DecodeError:
        return DecodeError(f"{self.where}.{field}", reason, self.code)

    def _need(self, n: int, field: str) -> int:
        if n < 0 or self.pos + n > self.end:
            raise self.fail(field, f"truncated: needs {n} bytes, {self.remaining} left")
        p = self.pos
        self.pos += n
        return p

    def u8(self, field: str) -> int:
        return int(_U8.unpack_from(self.data, self._need(1, field))[0])

    def u16(self, field: str) -> int:
        return int(_U16.unpack_from(self.data, self._need(2, field))[0])

    def u24(self, field: str) -> int:
        p = self._need(3, field)
        return int.from_bytes(self.data[p : p + 3], "big")

    def u32(self, field: str) -> int:
        return int(_U32.unpack_from(self.data, self._need(4, field))[0])

    def u64(self, field: str) -> int:
        return int(_U64.unpack_from(self.data, self._need(8, field))[0])

    def f32(self, field: str) -> float:
        return float(_F32.unpack_from(self.data, self._need(4, field))[0])

    def ipv4(self, field: str) -> ipaddress.IPv4Address:
        p = self._need(4, field)
        return ipv4_of(bytes(self.data[p : p + 4]))

    def ipv6(self, field: str) -> ipaddress.IPv6Address:
        p = self._need(16, field)
        return ipaddress.IPv6Address(self.data[p : p + 16])

    def bytes(self, n: int, field: str) -> builtins.bytes:
        p = self._need(n, field)
        return self.data[p : p + n]

    def rest(self) -> builtins.bytes:
        p = self.pos
        self.pos = self.end
        return self.data[p : self.end]

    def sub(self, n: int, field: str) -> Reader:
        """A reader over the next ``n`` bytes; this reader skips past them."""
        p = self._need(n, field)
        return Reader(self.data, f"{self.where}.{field}", p, p + n, self.code)

    def expect_end(self, field: str) -> None:
        if self.pos != self.end:
            raise self.fail(field, f"{self.end - self.pos} unexpected trailing bytes")


def u8(v: int) -> bytes:
    return _U8.pack(v)


def u16(v: int) -> bytes:
    return _U16.pack(v)


def u24(v: int) -> bytes:
    return v.to_bytes(3, "big")


def u32(v: int) -> bytes:
    return _U32.pack(v)


def u64(v: int) -> bytes:
    return _U64.pack(v)


def f32(v: float) -> bytes:
    return _F32.pack(v)


def pad4(n: int) -> int:
    """Bytes of padding that bring ``n`` to a multiple of four."""
    return -n % 4
