"""PCEP TLVs (RFC 5440 §7.1): Type(16) Length(16) Value, padded to four bytes.

Length counts the value only, not the padding. Every decode loop consumes exactly
``4 + length + padding`` bytes per TLV or raises :class:`~gmpls.errors.DecodeError`, so a
zero length cannot loop. Unknown TLV types are kept as :class:`UnknownTlv` and re-encoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from gmpls.errors import EncodeError
from gmpls.pcep.constants import TlvType
from gmpls.registry import Registry
from gmpls.wire import Reader, pad4, u16, u32


class Tlv(Protocol):
    def encode(self) -> bytes: ...


_TLVS: Registry[type] = Registry("PCEP TLV")


def _tlv(type_: int, value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise EncodeError(f"pcep.tlv[{type_}].length", f"{len(value)} > 65535")
    return u16(type_) + u16(len(value)) + value + bytes(pad4(len(value)))


@_TLVS.register(TlvType.NO_PATH_VECTOR)
@dataclass(frozen=True, slots=True)
class NoPathVectorTlv:
    """RFC 5440 §7.5: why no path was found (bits of :class:`~gmpls.pcep.constants.NoPathVector`)."""

    TYPE: ClassVar[int] = TlvType.NO_PATH_VECTOR
    flags: int = 0

    def encode(self) -> bytes:
        return _tlv(self.TYPE, u32(self.flags))

    @classmethod
    def decode_value(cls, r: Reader) -> NoPathVectorTlv:
        return cls(r.u32("flags"))


@_TLVS.register(TlvType.OVERLOAD_DURATION)
@dataclass(frozen=True, slots=True)
class OverloadDurationTlv:
    """RFC 5440 §7.14: seconds the PCE expects to stay overloaded."""

    TYPE: ClassVar[int] = TlvType.OVERLOAD_DURATION
    seconds: int = 0

    def encode(self) -> bytes:
        return _tlv(self.TYPE, u32(self.seconds))

    @classmethod
    def decode_value(cls, r: Reader) -> OverloadDurationTlv:
        return cls(r.u32("seconds"))


@_TLVS.register(TlvType.REQ_MISSING)
@dataclass(frozen=True, slots=True)
class ReqMissingTlv:
    """RFC 5440 §7.15: the request ID a synchronised (SVEC) request is missing."""

    TYPE: ClassVar[int] = TlvType.REQ_MISSING
    request_id: int = 0

    def encode(self) -> bytes:
        return _tlv(self.TYPE, u32(self.request_id))

    @classmethod
    def decode_value(cls, r: Reader) -> ReqMissingTlv:
        return cls(r.u32("request_id"))


@_TLVS.register(TlvType.NO_PATH_REASON)
@dataclass(frozen=True, slots=True)
class NoPathReasonTlv:
    """Why the PCE found no path, for people and tools (docs/pcep.md): a reason code
    (``pce.compute.NoPathReason``) and a UTF-8 explanation. Experimental TLV type 65504
    (RFC 8356 range); carried in the NO-PATH object next to NO-PATH-VECTOR."""

    TYPE: ClassVar[int] = TlvType.NO_PATH_REASON
    code: int = 0
    text: str = ""

    def encode(self) -> bytes:
        return _tlv(self.TYPE, u32(self.code) + self.text.encode())

    @classmethod
    def decode_value(cls, r: Reader) -> NoPathReasonTlv:
        code = r.u32("code")
        raw = bytes(r.rest())
        try:
            text = raw.decode()
        except UnicodeDecodeError as e:
            raise r.fail("text", f"not UTF-8: {e.reason}") from None
        return cls(code, text)


@dataclass(frozen=True, slots=True)
class UnknownTlv:
    """A TLV this codec does not know, kept to be re-encoded unchanged."""

    type: int
    value: bytes = b""

    def encode(self) -> bytes:
        return _tlv(self.type, self.value)


def decode_tlvs(r: Reader) -> tuple[Tlv, ...]:
    """Decode TLVs until the end of ``r``."""
    out: list[Tlv] = []
    i = 0
    while not r.at_end():
        type_ = r.u16(f"tlv[{i}].type")
        length = r.u16(f"tlv[{i}].length")
        body = r.sub(length, f"tlv[{i}]")
        pad = pad4(length)
        if pad:
            r.bytes(pad, f"tlv[{i}].padding")
        cls = _TLVS.get(type_)
        if cls is None:
            out.append(UnknownTlv(type_, body.rest()))
        else:
            out.append(cls.decode_value(body))  # type: ignore[attr-defined]
            body.expect_end("length")
        i += 1
    return tuple(out)


def encode_tlvs(tlvs: tuple[Tlv, ...]) -> bytes:
    return b"".join(t.encode() for t in tlvs)


def find_tlv(tlvs: tuple[Tlv, ...], cls: type) -> Tlv | None:
    for t in tlvs:
        if isinstance(t, cls):
            return t
    return None
