"""The TLV layout shared by the TE (RFC 3630 §2.3.2) and Router Information (RFC 7770 §2)
opaque LSAs: 16-bit type, 16-bit length of the value, value padded to four octets.

A TLV class has a ``TYPE`` class attribute, ``value() -> bytes`` and the class method
``from_value(r)`` reading a :class:`~gmpls.wire.Reader` bounded to the value. Classes
register in a :class:`~gmpls.registry.Registry`; an unregistered type decodes to
:class:`UnknownTLV`, which keeps the value so it is re-encoded unchanged. Every loop step
consumes the header, exactly ``length`` bytes and the padding, or raises.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from gmpls.errors import EncodeError
from gmpls.registry import Registry
from gmpls.wire import Reader, pad4


@dataclass(frozen=True, slots=True)
class UnknownTLV:
    """A TLV (or sub-TLV) of a type we do not interpret."""

    type: int
    raw: bytes

    def value(self) -> bytes:
        return self.raw


def encode_tlv(tlv: Any) -> bytes:
    t = tlv.type if isinstance(tlv, UnknownTLV) else tlv.TYPE
    v = tlv.value()
    if len(v) > 0xFFFF or not 0 <= t <= 0xFFFF:
        raise EncodeError(f"ospf.tlv[{t}]", "type or length does not fit 16 bits")
    return struct.pack("!HH", t, len(v)) + v + bytes(pad4(len(v)))


def encode_tlvs(tlvs: tuple[Any, ...]) -> bytes:
    return b"".join(encode_tlv(t) for t in tlvs)


def decode_tlvs(r: Reader, registry: Registry[Any], what: str) -> tuple[Any, ...]:
    """Decode TLVs until the reader is exhausted."""
    out = []
    while not r.at_end():
        t = r.u16(f"{what}.type")
        length = r.u16(f"{what}[{t}].length")
        v = r.sub(length, f"{what}[{t}]")
        r.bytes(pad4(length), f"{what}[{t}].padding")
        cls = registry.get(t)
        if cls is None:
            out.append(UnknownTLV(t, v.rest()))
        else:
            out.append(cls.from_value(v))
            v.expect_end("value")
    return tuple(out)
