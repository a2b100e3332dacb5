"""PCEP TLVs (RFC 5440 §7.1): Type(16) Length(16) Value, padded to four bytes.

The framing is :mod:`gmpls.tlv` (the same as OSPF-TE's); this module holds the PCEP TLV
classes, registered in :data:`TLVS` by type, and :data:`TLV_TAIL`, the TLVs that end most
PCEP objects. Unknown TLV types are kept as :class:`~gmpls.tlv.UnknownTlv` and re-encoded.
"""

from __future__ import annotations

from gmpls.layout import Tail, layout
from gmpls.pcep.constants import TlvType
from gmpls.registry import Registry
from gmpls.tlv import AnyTlv, Tlv, tlvs
from gmpls.wire import Reader

TLVS: Registry[type] = Registry("PCEP TLV", attrs=("TYPE",))


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


#: the TLVs that end an object's body, as the tail of its layout
TLV_TAIL = tlvs(TLVS)


def find_tlv(tlvs: tuple[AnyTlv, ...], cls: type) -> AnyTlv | None:
    for t in tlvs:
        if isinstance(t, cls):
            return t
    return None
