"""PCEP TLVs (RFC 5440 §7.1): Type(16) Length(16) Value, padded to four bytes.

The framing is :mod:`gmpls.tlv` (the same as OSPF-TE's); this module holds the PCEP TLV
classes, registered in :data:`TLVS` by type, and :data:`TLV_TAIL`, the TLVs that end most
PCEP objects. Unknown TLV types are kept as :class:`~gmpls.tlv.UnknownTlv` and re-encoded.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Hashable
from typing import Any, Self

from gmpls.errors import EncodeError
from gmpls.layout import Tail, layout
from gmpls.pcep.constants import (
    STATEFUL_FLAG_I,
    STATEFUL_FLAG_U,
    PathSetupType,
    TlvType,
)
from gmpls.registry import Registry
from gmpls.tlv import AnyTlv, Tlv, decode_tlvs, encode_tlvs, tlvs
from gmpls.wire import Reader, pad4


class _PcepTlvs(Registry[type]):
    """The PCEP TLV registry, plus the TLVs whose type is configuration (a
    ``gmpls.qe.CODEPOINTS`` field, read at each lookup, as OSPF-TE's Available Labels):
    :meth:`configured` adds one (:mod:`gmpls.pcep.relay` does)."""

    def __init__(self, name: str, attrs: tuple[str, ...] = ()) -> None:
        super().__init__(name, attrs)
        self._configured: list[tuple[Callable[[], int], type]] = []

    def configured(self, code: Callable[[], int], cls: type) -> None:
        self._configured.append((code, cls))

    def get(self, code: Hashable) -> type | None:
        for current, cls in self._configured:
            if code == current():
                return cls
        return super().get(code)

    def __contains__(self, code: Hashable) -> bool:
        return self.get(code) is not None

    def codes(self) -> list[Hashable]:
        return [*super().codes(), *(current() for current, _ in self._configured)]


TLVS: _PcepTlvs = _PcepTlvs("PCEP TLV", attrs=("TYPE",))


@TLVS.register(TlvType.NO_PATH_VECTOR)
@layout("flags:u32")
class NoPathVectorTlv(Tlv):
    """RFC 5440 §7.5: why no path was found (bits of :class:`~gmpls.pcep.constants.NoPathVector`)."""

    flags: int = 0


@TLVS.register(TlvType.OVERLOAD_DURATION)
@layout("seconds:u32")
class OverloadDurationTlv(Tlv):
    """RFC 5440 §7.14: seconds the PCE expects to stay overloaded."""

    seconds: int = 0


@TLVS.register(TlvType.REQ_MISSING)
@layout("request_id:u32")
class ReqMissingTlv(Tlv):
    """RFC 5440 §7.15: the request ID a synchronised (SVEC) request is missing."""

    request_id: int = 0


def _utf8(r: Reader, name: str) -> str:
    try:
        return bytes(r.rest()).decode()
    except UnicodeDecodeError as e:
        raise r.fail(name, f"not UTF-8: {e.reason}") from None


@TLVS.register(TlvType.NO_PATH_REASON)
@layout("code:u32", text=Tail(str.encode, _utf8))
class NoPathReasonTlv(Tlv):
    """Why the PCE found no path, for people and tools (docs/pcep.md): a reason code
    (``pce.compute.NoPathReason``) and a UTF-8 explanation. Experimental TLV type 65504
    (RFC 8356 range); carried in the NO-PATH object next to NO-PATH-VECTOR."""

    code: int = 0
    text: str = ""


@TLVS.register(TlvType.STATEFUL_PCE_CAPABILITY)
@layout("flags:u32")
class StatefulCapabilityTlv(Tlv):
    """RFC 8231 §7.1.1 STATEFUL-PCE-CAPABILITY, in the OPEN object: Flags(32), U = 0x1 (the
    PCE may update LSPs), RFC 8281 §4.1 I = 0x4 (it may instantiate them)."""

    flags: int = 0

    @property
    def update(self) -> bool:
        return bool(self.flags & STATEFUL_FLAG_U)

    @property
    def instantiation(self) -> bool:
        return bool(self.flags & STATEFUL_FLAG_I)


def _name(r: Reader, name: str) -> bytes:
    if r.at_end():
        raise r.fail(name, "a symbolic path name is at least one byte")
    return r.rest()


@TLVS.register(TlvType.SYMBOLIC_PATH_NAME)
@layout(name=Tail(bytes, _name))
class SymbolicPathNameTlv(Tlv):
    """RFC 8231 §7.3.2 SYMBOLIC-PATH-NAME, in the LSP object: the LSP's name, unique per
    PCC and constant for the LSP's life (bytes; :attr:`text` reads them as UTF-8)."""

    name: bytes

    @property
    def text(self) -> str:
        return self.name.decode(errors="replace")


@TLVS.register(TlvType.IPV4_LSP_IDENTIFIERS)
@layout("sender:ipv4 lsp_id:u16 tunnel_id:u16 extended_tunnel_id:ipv4 endpoint:ipv4")
class Ipv4LspIdentifiersTlv(Tlv):
    """RFC 8231 §7.3.1 IPV4-LSP-IDENTIFIERS: the RSVP-TE session and sender template of
    the LSP (tunnel sender, LSP ID, tunnel ID, extended tunnel ID, tunnel end point)."""

    sender: ipaddress.IPv4Address
    lsp_id: int
    tunnel_id: int
    extended_tunnel_id: ipaddress.IPv4Address
    endpoint: ipaddress.IPv4Address


@TLVS.register(TlvType.LSP_ERROR_CODE)
@layout("code:u32")
class LspErrorCodeTlv(Tlv):
    """RFC 8231 §7.3.3 LSP-ERROR-CODE: why a PCC reports an LSP down (1 unknown, 2 limit
    reached, 3 too many pending updates, 4 unacceptable parameters, 5 internal error,
    6 brought down, 7 preempted, 8 RSVP signalling error)."""

    code: int


@TLVS.register(TlvType.PATH_SETUP_TYPE)
@layout("reserved:x3 pst:u8")
class PathSetupTypeTlv(Tlv):
    """RFC 8408 §4 PATH-SETUP-TYPE, in the RP and SRP objects: Reserved(24) | PST(8);
    absent means PST 0 (RSVP-TE)."""

    pst: int = PathSetupType.RSVP_TE


@TLVS.register(TlvType.SR_PCE_CAPABILITY)
@layout("reserved:x2 flags:u8 msd:u8")
class SrPceCapabilityTlv(Tlv):
    """RFC 8664 §4.1.2 SR-PCE-CAPABILITY sub-TLV: Reserved(16) | Flags(8: N, X) | MSD(8)."""

    flags: int = 0
    msd: int = 0


_PSTS = struct.Struct("!3xB")


@TLVS.register(TlvType.PATH_SETUP_TYPE_CAPABILITY)
@layout()
class PathSetupTypeCapabilityTlv(Tlv):
    """RFC 8408 §3 PATH-SETUP-TYPE-CAPABILITY, in the OPEN object: Reserved(24) | Num of
    PSTs(8) | the PSTs, one byte each, padded to 4 | optional sub-TLVs (RFC 8664's
    SR-PCE-CAPABILITY for PST 1)."""

    psts: tuple[int, ...] = (PathSetupType.RSVP_TE,)
    tlvs: tuple[AnyTlv, ...] = ()

    def encode_body(self) -> bytes:
        n = len(self.psts)
        if not 0 < n < 256 or any(not 0 <= p < 256 for p in self.psts):
            raise EncodeError("PathSetupTypeCapabilityTlv.psts", f"{self.psts} is not 1..255 bytes")
        body = _PSTS.pack(n) + bytes(self.psts)
        return body + bytes(pad4(n)) + encode_tlvs(self.tlvs)

    @classmethod
    def decode_body(cls, r: Reader, **extra: Any) -> Self:
        r.bytes(3, "reserved")
        n = r.u8("num_psts")
        if n == 0:
            raise r.fail("num_psts", "a PATH-SETUP-TYPE-CAPABILITY lists at least one PST")
        psts = tuple(r.bytes(n, "psts"))
        r.bytes(pad4(n), "padding")
        return cls(psts, decode_tlvs(r, TLVS, "sub_tlv"), **extra)


#: the TLVs that end an object's body, as the tail of its layout
TLV_TAIL = tlvs(TLVS)


def find_tlv(tlvs: tuple[AnyTlv, ...], cls: type) -> AnyTlv | None:
    for t in tlvs:
        if isinstance(t, cls):
            return t
    return None
