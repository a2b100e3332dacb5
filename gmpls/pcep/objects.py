"""PCEP objects (RFC 5440 §7): the common object header and one class per object.

Common object header (RFC 5440 §7.2)::

    Object-Class(8) | OT(4) Res(2) P(1) I(1) | Object Length(16, header included, 4n)

Every class carries its header flags ``p`` (processing rule: the object MUST be taken
into account) and ``i`` (ignore: the PCE ignored this optional object). Classes register
themselves by ``(object class, object type)``; a pair with no class decodes to
:class:`UnknownObject`, which keeps the raw body so it can be re-encoded unchanged and so
the session can apply the P-flag rules of §7.2 (:func:`unprocessable`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from gmpls import ero as ero_codec
from gmpls.errors import EncodeError
from gmpls.layout import Repeat, Wired, layout
from gmpls.pcep.constants import (
    ERR_INVALID_OPEN,
    ERR_UNKNOWN_CLASS,
    ERR_UNKNOWN_TYPE,
    ERR_UNSUPPORTED_CLASS,
    LSP_FLAG_A,
    LSP_FLAG_C,
    LSP_FLAG_D,
    LSP_FLAG_R,
    LSP_FLAG_S,
    LSP_O_MASK,
    LSP_O_SHIFT,
    NO_PATH_FLAG_C,
    SRP_FLAG_R,
    VERSION,
    LspState,
    ObjClass,
    PathSetupType,
)
from gmpls.pcep.tlv import (
    TLV_TAIL,
    TLVS,
    Ipv4LspIdentifiersTlv,
    NoPathVectorTlv,
    PathSetupTypeTlv,
    SymbolicPathNameTlv,
    find_tlv,
)
from gmpls.registry import Registry
from gmpls.tlv import AnyTlv, decode_tlvs, encode_tlvs
from gmpls.wire import Reader, u8, u16

_OBJECTS: Registry[type] = Registry("PCEP object", attrs=("CLASS", "TYPE"))

#: object classes RFC 5440 defines but this codec does not implement (→ "not supported")
UNSUPPORTED_CLASSES = frozenset({ObjClass.LOAD_BALANCING})


def _object(oclass: int, otype: int, p: bool, i: bool, body: bytes) -> bytes:
    length = 4 + len(body)
    if length % 4 or length > 0xFFFF:
        raise EncodeError(f"pcep.object[{oclass}/{otype}].length", f"{length} is not 4n <= 65532")
    if not 0 <= otype <= 15:
        raise EncodeError(f"pcep.object[{oclass}].type", f"{otype} does not fit 4 bits")
    return u8(oclass) + u8((otype << 4) | (2 if p else 0) | (1 if i else 0)) + u16(length) + body


class PcepObject(Wired):
    """Base of every object class: the common header around the body. The registry sets
    ``CLASS`` and ``TYPE``; the P and I flags are the last fields of every class."""

    __slots__ = ()
    CLASS: ClassVar[int]
    TYPE: ClassVar[int]
    p: bool
    i: bool

    @property
    def object_class(self) -> int:
        return self.CLASS

    @property
    def object_type(self) -> int:
        return self.TYPE

    def encode(self) -> bytes:
        return _object(self.CLASS, self.TYPE, self.p, self.i, self.encode_body())


@_OBJECTS.register((ObjClass.OPEN, 1))
@dataclass(frozen=True, slots=True)
class OpenObject(PcepObject):
    """RFC 5440 §7.3: Ver(3) Flags(5) | Keepalive | DeadTimer | SID, then TLVs."""

    keepalive: int = 30
    deadtimer: int = 120
    sid: int = 0
    flags: int = 0
    tlvs: tuple[AnyTlv, ...] = ()
    version: int = VERSION
    p: bool = False
    i: bool = False

    def encode_body(self) -> bytes:
        first = u8((self.version << 5) | (self.flags & 0x1F))
        return (
            first + u8(self.keepalive) + u8(self.deadtimer) + u8(self.sid) + encode_tlvs(self.tlvs)
        )

    @classmethod
    def decode_body(cls, r: Reader, **extra: Any) -> Self:
        first = r.u8("version")
        version = first >> 5
        if version != VERSION:
            r.code = ERR_INVALID_OPEN
            raise r.fail("version", f"PCEP version {version} not supported")
        ka, dt, sid = r.u8("keepalive"), r.u8("deadtimer"), r.u8("sid")
        return cls(ka, dt, sid, first & 0x1F, decode_tlvs(r, TLVS), version, **extra)


@_OBJECTS.register((ObjClass.RP, 1))
@layout("flags:u32 request_id:u32", tlvs=TLV_TAIL)
class RP(PcepObject):
    """RFC 5440 §7.4: Flags(32: ... O B R Pri(3)) | Request-ID-number(32), then TLVs."""

    request_id: int
    flags: int = 0
    tlvs: tuple[AnyTlv, ...] = ()
    p: bool = True
    i: bool = False

    @property
    def priority(self) -> int:
        return self.flags & 0x07


@_OBJECTS.register((ObjClass.NO_PATH, 1))
@layout("ni:u8 flags:u16 reserved:x1", tlvs=TLV_TAIL)
class NoPath(PcepObject):
    """RFC 5440 §7.5: NI(8) | Flags(16, C=0x8000) | Reserved(8), then TLVs
    (NO-PATH-VECTOR)."""

    ni: int = 0
    flags: int = 0
    tlvs: tuple[AnyTlv, ...] = ()
    p: bool = False
    i: bool = False

    @property
    def vector(self) -> int:
        """The NO-PATH-VECTOR bits, 0 when absent."""
        t = find_tlv(self.tlvs, NoPathVectorTlv)
        return t.flags if isinstance(t, NoPathVectorTlv) else 0

    @property
    def constraints_included(self) -> bool:
        return bool(self.flags & NO_PATH_FLAG_C)


@_OBJECTS.register((ObjClass.END_POINTS, 1))
@layout("source:ipv4 destination:ipv4")
class EndPointsIpv4(PcepObject):
    """RFC 5440 §7.6, object type 1: source and destination IPv4 addresses."""

    source: ipaddress.IPv4Address
    destination: ipaddress.IPv4Address
    p: bool = True
    i: bool = False


@_OBJECTS.register((ObjClass.END_POINTS, 2))
@layout("source:ipv6 destination:ipv6")
class EndPointsIpv6(PcepObject):
    """RFC 5440 §7.6, object type 2: source and destination IPv6 addresses."""

    source: ipaddress.IPv6Address
    destination: ipaddress.IPv6Address
    p: bool = True
    i: bool = False


@_OBJECTS.register((ObjClass.BANDWIDTH, 1), (ObjClass.BANDWIDTH, 2))
@layout("bandwidth:f32")
class Bandwidth(PcepObject):
    """RFC 5440 §7.7: bandwidth in bytes per second, IEEE-754 float32.

    Object type 1 is the requested bandwidth, 2 the bandwidth of an existing LSP being
    re-optimised: registered for both, the instance carries its type.
    """

    CLASS: ClassVar[int] = ObjClass.BANDWIDTH
    bandwidth: float
    type: int = 1
    p: bool = False
    i: bool = False

    @property
    def object_type(self) -> int:
        return self.type

    def encode(self) -> bytes:
        if self.type not in (1, 2):
            raise EncodeError("pcep.BANDWIDTH.type", f"{self.type} is not 1 or 2")
        return _object(self.CLASS, self.type, self.p, self.i, self.encode_body())


@_OBJECTS.register((ObjClass.METRIC, 1))
@layout("reserved:x2 flags:u8 metric_type:u8 value:f32")
class Metric(PcepObject):
    """RFC 5440 §7.8: Reserved(16) | Flags(8: C, B) | T(8) | metric value (float32)."""

    metric_type: int
    value: float
    flags: int = 0
    p: bool = False
    i: bool = False


@layout(subobjects=ero_codec.subobjects())
class _Route(PcepObject):
    subobjects: tuple[ero_codec.Subobject, ...] = ()
    p: bool = False
    i: bool = False


@_OBJECTS.register((ObjClass.ERO, 1))
class Ero(_Route):
    """RFC 5440 §7.9: explicit route, subobjects of RFC 3209/3473/3477 and the QE one."""

    __slots__ = ()


@_OBJECTS.register((ObjClass.RRO, 1))
class Rro(_Route):
    """RFC 5440 §7.10: recorded route."""

    __slots__ = ()


@_OBJECTS.register((ObjClass.IRO, 1))
class Iro(_Route):
    """RFC 5440 §7.12: include route — network elements the path must traverse."""

    __slots__ = ()


@_OBJECTS.register((ObjClass.LSPA, 1))
@layout(
    "exclude_any:u32 include_any:u32 include_all:u32 setup_priority:u8 holding_priority:u8"
    " flags:u8 reserved:x1",
    tlvs=TLV_TAIL,
)
class Lspa(PcepObject):
    """RFC 5440 §7.11: Exclude-any | Include-any | Include-all (32 each) |
    Setup Prio(8) | Holding Prio(8) | Flags(8, L) | Reserved(8), then TLVs."""

    exclude_any: int = 0
    include_any: int = 0
    include_all: int = 0
    setup_priority: int = 7
    holding_priority: int = 7
    flags: int = 0
    tlvs: tuple[AnyTlv, ...] = ()
    p: bool = False
    i: bool = False


@_OBJECTS.register((ObjClass.SVEC, 1))
@layout("reserved:x1 flags:u24", request_ids=Repeat("u32"))
class Svec(PcepObject):
    """RFC 5440 §7.13.2: Reserved(8) | Flags(24: S N L) | Request-ID-number #1..#m."""

    request_ids: tuple[int, ...] = ()
    flags: int = 0
    p: bool = False
    i: bool = False


@_OBJECTS.register((ObjClass.NOTIFICATION, 1))
@layout("reserved:x1 flags:u8 nt:u8 nv:u8", tlvs=TLV_TAIL)
class Notification(PcepObject):
    """RFC 5440 §7.14: Reserved(8) | Flags(8) | Notification-type | Notification-value,
    then TLVs (OVERLOAD-DURATION)."""

    nt: int
    nv: int
    flags: int = 0
    tlvs: tuple[AnyTlv, ...] = ()
    p: bool = False
    i: bool = False


@_OBJECTS.register((ObjClass.PCEP_ERROR, 1))
@layout("reserved:x1 flags:u8 error_type:u8 error_value:u8", tlvs=TLV_TAIL)
class ErrorObject(PcepObject):
    """RFC 5440 §7.15 PCEP-ERROR: Reserved(8) | Flags(8) | Error-Type | Error-value,
    then TLVs (REQ-MISSING)."""

    error_type: int
    error_value: int
    flags: int = 0
    tlvs: tuple[AnyTlv, ...] = ()
    p: bool = False
    i: bool = False

    @property
    def code(self) -> tuple[int, int]:
        return (self.error_type, self.error_value)


@_OBJECTS.register((ObjClass.CLOSE, 1))
@layout("reserved:x2 flags:u8 reason:u8", tlvs=TLV_TAIL)
class CloseObject(PcepObject):
    """RFC 5440 §7.17: Reserved(16) | Flags(8) | Reason(8), then TLVs."""

    reason: int = 1
    flags: int = 0
    tlvs: tuple[AnyTlv, ...] = ()
    p: bool = False
    i: bool = False


def _pst(tlvs: tuple[AnyTlv, ...]) -> int:
    t = find_tlv(tlvs, PathSetupTypeTlv)
    return t.pst if isinstance(t, PathSetupTypeTlv) else PathSetupType.RSVP_TE


@_OBJECTS.register((ObjClass.SRP, 1))
@layout("flags:u32 srp_id:u32", tlvs=TLV_TAIL)
class Srp(PcepObject):
    """RFC 8231 §7.2 SRP (Stateful PCE Request Parameters): Flags(32, RFC 8281 R = remove)
    | SRP-ID-number(32), then TLVs (PATH-SETUP-TYPE). It ties a PCUpd or PCInitiate to the
    PCRpt and PCErr that answer it."""

    srp_id: int
    flags: int = 0
    tlvs: tuple[AnyTlv, ...] = ()
    p: bool = False
    i: bool = False

    @property
    def remove(self) -> bool:
        return bool(self.flags & SRP_FLAG_R)

    @property
    def pst(self) -> int:
        """The path setup type (RFC 8408 §4: PST 0 when the TLV is absent)."""
        return _pst(self.tlvs)


@_OBJECTS.register((ObjClass.LSP, 1))
@dataclass(frozen=True, slots=True)
class LspObject(PcepObject):
    """RFC 8231 §7.3 LSP: PLSP-ID(20) | Flags(12: ... C(RFC 8281) O(3) A R S D), then TLVs
    (IPV4-LSP-IDENTIFIERS, SYMBOLIC-PATH-NAME, LSP-ERROR-CODE). PLSP-ID 0 is reserved:
    with S clear it marks the end of a state synchronisation (§5.6)."""

    plsp_id: int = 0
    flags: int = 0
    tlvs: tuple[AnyTlv, ...] = ()
    p: bool = False
    i: bool = False

    def encode_body(self) -> bytes:
        if not 0 <= self.plsp_id < 1 << 20 or not 0 <= self.flags < 1 << 12:
            raise EncodeError(
                "pcep.LSP", f"PLSP-ID {self.plsp_id} or flags {self.flags:#x} do not fit 20/12 bits"
            )
        return ((self.plsp_id << 12) | self.flags).to_bytes(4, "big") + encode_tlvs(self.tlvs)

    @classmethod
    def decode_body(cls, r: Reader, **extra: Any) -> Self:
        word = r.u32("plsp_id")
        return cls(word >> 12, word & 0xFFF, decode_tlvs(r, TLVS), **extra)

    @property
    def delegated(self) -> bool:
        return bool(self.flags & LSP_FLAG_D)

    @property
    def sync(self) -> bool:
        return bool(self.flags & LSP_FLAG_S)

    @property
    def remove(self) -> bool:
        return bool(self.flags & LSP_FLAG_R)

    @property
    def create(self) -> bool:
        return bool(self.flags & LSP_FLAG_C)

    @property
    def state(self) -> LspState | int:
        o = (self.flags & LSP_O_MASK) >> LSP_O_SHIFT
        return LspState(o) if o in LspState._value2member_map_ else o

    @property
    def end_of_sync(self) -> bool:
        """RFC 8231 §5.6: the marker closing a state synchronisation."""
        return self.plsp_id == 0 and not self.sync

    @property
    def name(self) -> str:
        t = find_tlv(self.tlvs, SymbolicPathNameTlv)
        return t.text if isinstance(t, SymbolicPathNameTlv) else ""

    @property
    def identifiers(self) -> Ipv4LspIdentifiersTlv | None:
        t = find_tlv(self.tlvs, Ipv4LspIdentifiersTlv)
        return t if isinstance(t, Ipv4LspIdentifiersTlv) else None


def lsp_flags(
    *,
    delegate: bool = False,
    sync: bool = False,
    remove: bool = False,
    admin: bool = False,
    state: int = LspState.DOWN,
    create: bool = False,
) -> int:
    """The 12 flag bits of an LSP object (RFC 8231 §7.3, RFC 8281 §5.3.1)."""
    return (
        (LSP_FLAG_D if delegate else 0)
        | (LSP_FLAG_S if sync else 0)
        | (LSP_FLAG_R if remove else 0)
        | (LSP_FLAG_A if admin else 0)
        | ((state << LSP_O_SHIFT) & LSP_O_MASK)
        | (LSP_FLAG_C if create else 0)
    )


@dataclass(frozen=True, slots=True)
class UnknownObject(PcepObject):
    """An object whose (class, type) this codec does not implement; the body is kept."""

    oclass: int
    otype: int
    body: bytes = b""
    p: bool = False
    i: bool = False

    @property
    def object_class(self) -> int:
        return self.oclass

    @property
    def object_type(self) -> int:
        return self.otype

    def encode_body(self) -> bytes:
        return self.body

    def encode(self) -> bytes:
        return _object(self.oclass, self.otype, self.p, self.i, self.body)


def unprocessable(obj: PcepObject) -> tuple[int, int] | None:
    """RFC 5440 §7.2: the PCErr (type, value) owed for an object the PCE must process
    (P flag set) but cannot — None when the object is known or optional.

    Unrecognised class → (3, 1); recognised class, unrecognised type → (3, 2); a class
    RFC 5440 defines that this implementation does not support → (4, 1).
    """
    if not isinstance(obj, UnknownObject) or not obj.p:
        return None
    if obj.oclass in UNSUPPORTED_CLASSES:
        return ERR_UNSUPPORTED_CLASS
    if any(k[0] == obj.oclass for k in _OBJECTS.codes() if isinstance(k, tuple)):
        return ERR_UNKNOWN_TYPE
    return ERR_UNKNOWN_CLASS


def decode_objects(r: Reader) -> list[PcepObject]:
    """Decode objects until the end of ``r`` (each length 4n, at least 4)."""
    out: list[PcepObject] = []
    while not r.at_end():
        n = len(out)
        oclass = r.u8(f"object[{n}].class")
        flags = r.u8(f"object[{n}].type")
        length = r.u16(f"object[{n}].length")
        if length < 4 or length % 4:
            raise r.fail(f"object[{n}].length", f"{length} is not a multiple of 4 of at least 4")
        otype, p, i = flags >> 4, bool(flags & 2), bool(flags & 1)
        name = ObjClass(oclass).name if oclass in ObjClass._value2member_map_ else str(oclass)
        body = r.sub(length - 4, f"object[{n}]<{name}>")
        cls = _OBJECTS.get((oclass, otype))
        if cls is None:
            out.append(UnknownObject(oclass, otype, body.rest(), p, i))
            continue
        if cls is Bandwidth:
            out.append(Bandwidth.decode_body(body, type=otype, p=p, i=i))
        else:
            out.append(cls.decode_body(body, p=p, i=i))  # type: ignore[attr-defined]
        body.expect_end("length")
    return out
