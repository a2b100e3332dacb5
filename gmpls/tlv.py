"""TLVs as OSPF-TE (RFC 3630 §2.3.2), OSPF Router Information (RFC 7770 §2) and PCEP
(RFC 5440 §7.1) frame them: 16-bit type, 16-bit length of the value, then the value padded
to four octets (the padding is not counted in the length).

A TLV class is a :class:`Tlv`: its registry sets ``TYPE``, and its value is its
:class:`~gmpls.layout.Layout` (or its own ``encode_body``/``decode_body``, reading a
:class:`~gmpls.wire.Reader` bounded to the value). An unregistered type decodes to
:class:`UnknownTlv`, which keeps the value so it is re-encoded unchanged. Every loop step
consumes the header, exactly ``length`` bytes and the padding, or raises.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, ClassVar

from gmpls.errors import EncodeError
from gmpls.layout import Tail, Wired
from gmpls.registry import Registry
from gmpls.wire import Reader, pad4

_HEAD = struct.Struct("!HH")
_PADDING = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")


def _frame(type_: int, value: bytes) -> bytes:
    n = len(value)
    if n > 0xFFFF or not 0 <= type_ <= 0xFFFF:
        raise EncodeError(f"tlv[{type_}]", "type or length does not fit 16 bits")
    return _HEAD.pack(type_, n) + value + _PADDING[n % 4]


class Tlv(Wired):
    """Base of the registered TLV classes."""

    __slots__ = ()
    TYPE: ClassVar[int]

    def encode(self) -> bytes:
        return _frame(self.TYPE, self.encode_body())


@dataclass(frozen=True, slots=True)
class UnknownTlv:
    """A TLV (or sub-TLV) of a type this codec does not interpret: the value is kept."""

    type: int
    value: bytes = b""

    def encode(self) -> bytes:
        return _frame(self.type, self.value)


AnyTlv = Tlv | UnknownTlv


def encode_tlvs(tlvs: tuple[Any, ...]) -> bytes:
    return b"".join(t.encode() for t in tlvs)


def decode_tlvs(r: Reader, registry: Registry[Any], what: str = "tlv") -> tuple[Any, ...]:
    """Decode TLVs of ``registry`` until the reader is exhausted."""
    out: list[Any] = []
    while not r.at_end():
        i = len(out)
        t = r.u16(f"{what}[{i}].type")
        length = r.u16(f"{what}[{i}].length")
        v = r.sub(length, f"{what}[{i}]<{t}>")
        r.bytes(pad4(length), f"{what}[{i}].padding")
        cls = registry.get(t)
        if cls is None:
            out.append(UnknownTlv(t, v.rest()))
        else:
            out.append(cls.decode_body(v))
            v.expect_end("length")
    return tuple(out)


def tlvs(registry: Registry[Any], what: str = "tlv") -> Tail:
    """The TLVs of ``registry`` as the tail of a layout (the TLVs that end a body)."""
    return Tail(encode_tlvs, lambda r, name: decode_tlvs(r, registry, what))
