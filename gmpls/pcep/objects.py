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
from typing import ClassVar, Protocol

from gmpls import ero as ero_codec
from gmpls.errors import EncodeError
from gmpls.pcep.constants import (
    ERR_INVALID_OPEN,
    ERR_UNKNOWN_CLASS,
    ERR_UNKNOWN_TYPE,
    ERR_UNSUPPORTED_CLASS,
    NO_PATH_FLAG_C,
    VERSION,
    ObjClass,
)
from gmpls.pcep.tlv import NoPathVectorTlv, Tlv, decode_tlvs, encode_tlvs, find_tlv
from gmpls.registry import Registry
from gmpls.wire import Reader, f32, u8, u16, u32


class PcepObject(Protocol):
    @property
    def p(self) -> bool: ...

    @property
    def i(self) -> bool: ...

    @property
    def object_class(self) -> int: ...

    @property
    def object_type(self) -> int: ...

    def encode(self) -> bytes: ...


_OBJECTS: Registry[type] = Registry("PCEP object")

#: object classes RFC 5440 defines but this codec does not implement (→ "not supported")
UNSUPPORTED_CLASSES = frozenset({ObjClass.LOAD_BALANCING})


def _object(oclass: int, otype: int, p: bool, i: bool, body: bytes) -> bytes:
    length = 4 + len(body)
    if length % 4 or length > 0xFFFF:
        raise EncodeError(f"pcep.object[{oclass}/{otype}].length", f"{length} is not 4n <= 65532")
    if not 0 <= otype <= 15:
        raise EncodeError(f"pcep.object[{oclass}].type", f"{otype} does not fit 4 bits")
    return u8(oclass) + u8((otype << 4) | (2 if p else 0) | (1 if i else 0)) + u16(length) + body


class _Fixed:
    """Mixin giving registered classes their class/type properties."""

    __slots__ = ()
    CLASS: ClassVar[int]
    TYPE: ClassVar[int]

    @property
    def object_class(self) -> int:
        return self.CLASS

    @property
    def object_type(self) -> int:
        return self.TYPE


@_OBJECTS.register((ObjClass.OPEN, 1))
@dataclass(frozen=True, slots=True)
class OpenObject(_Fixed):
    """RFC 5440 §7.3: Ver(3) Flags(5) | Keepalive | DeadTimer | SID, then TLVs."""

    CLASS: ClassVar[int] = ObjClass.OPEN
    TYPE: ClassVar[int] = 1
    keepalive: int = 30
    deadtimer: int = 120
    sid: int = 0
    flags: int = 0
    tlvs: tuple[Tlv, ...] = ()
    version: int = VERSION
    p: bool = False
    i: bool = False

    def encode(self) -> bytes:
        body = (
            u8((self.version << 5) | (self.flags & 0x1F))
            + u8(self.keepalive)
            + u8(self.deadtimer)
            + u8(self.sid)
            + encode_tlvs(self.tlvs)
        )
        return _object(self.CLASS, self.TYPE, self.p, self.i, body)

    @classmethod
    def decode_body(cls, r: Reader, p: bool, i: bool) -> OpenObject:
        first = r.u8("version")
        version = first >> 5
        if version != VERSION:
            r.code = ERR_INVALID_OPEN
            raise r.fail("version", f"PCEP version {version} not supported")
        ka, dt, sid = r.u8("keepalive"), r.u8("deadtimer"), r.u8("sid")
        return cls(ka, dt, sid, first & 0x1F, decode_tlvs(r), version, p, i)


@_OBJECTS.register((ObjClass.RP, 1))
@dataclass(frozen=True, slots=True)
class RP(_Fixed):
    """RFC 5440 §7.4: Flags(32: ... O B R Pri(3)) | Request-ID-number(32), then TLVs."""

    CLASS: ClassVar[int] = ObjClass.RP
    TYPE: ClassVar[int] = 1
    request_id: int
    flags: int = 0
    tlvs: tuple[Tlv, ...] = ()
    p: bool = True
    i: bool = False

    @property
    def priority(self) -> int:
        return self.flags & 0x07

    def encode(self) -> bytes:
        body = u32(self.flags) + u32(self.request_id) + encode_tlvs(self.tlvs)
        return _object(self.CLASS, self.TYPE, self.p, self.i, body)

    @classmethod
    def decode_body(cls, r: Reader, p: bool, i: bool) -> RP:
        flags = r.u32("flags")
        return cls(r.u32("request_id"), flags, decode_tlvs(r), p, i)


@_OBJECTS.register((ObjClass.NO_PATH, 1))
@dataclass(frozen=True, slots=True)
class NoPath(_Fixed):
    """RFC 5440 §7.5: NI(8) | Flags(16, C=0x8000) | Reserved(8), then TLVs
    (NO-PATH-VECTOR)."""

    CLASS: ClassVar[int] = ObjClass.NO_PATH
    TYPE: ClassVar[int] = 1
    ni: int = 0
    flags: int = 0
    tlvs: tuple[Tlv, ...] = ()
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

    def encode(self) -> bytes:
        body = u8(self.ni) + u16(self.flags) + b"\x00" + encode_tlvs(self.tlvs)
        return _object(self.CLASS, self.TYPE, self.p, self.i, body)

    @classmethod
    def decode_body(cls, r: Reader, p: bool, i: bool) -> NoPath:
        ni = r.u8("ni")
        flags = r.u16("flags")
        r.u8("reserved")
        return cls(ni, flags, decode_tlvs(r), p, i)


@_OBJECTS.register((ObjClass.END_POINTS, 1))
@dataclass(frozen=True, slots=True)
class EndPointsIpv4(_Fixed):
    """RFC 5440 §7.6, object type 1: source and destination IPv4 addresses."""

    CLASS: ClassVar[int] = ObjClass.END_POINTS
    TYPE: ClassVar[int] = 1
    source: ipaddress.IPv4Address
    destination: ipaddress.IPv4Address
    p: bool = True
    i: bool = False

    def encode(self) -> bytes:
        body = self.source.packed + self.destination.packed
        return _object(self.CLASS, self.TYPE, self.p, self.i, body)

    @classmethod
    def decode_body(cls, r: Reader, p: bool, i: bool) -> EndPointsIpv4:
        return cls(r.ipv4("source"), r.ipv4("destination"), p, i)


@_OBJECTS.register((ObjClass.END_POINTS, 2))
@dataclass(frozen=True, slots=True)
class EndPointsIpv6(_Fixed):
    """RFC 5440 §7.6, object type 2: source and destination IPv6 addresses."""

    CLASS: ClassVar[int] = ObjClass.END_POINTS
    TYPE: ClassVar[int] = 2
    source: ipaddress.IPv6Address
    destination: ipaddress.IPv6Address
    p: bool = True
    i: bool = False

    def encode(self) -> bytes:
        body = self.source.packed + self.destination.packed
        return _object(self.CLASS, self.TYPE, self.p, self.i, body)

    @classmethod
    def decode_body(cls, r: Reader, p: bool, i: bool) -> EndPointsIpv6:
        return cls(r.ipv6("source"), r.ipv6("destination"), p, i)


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """RFC 5440 §7.7: bandwidth in bytes per second, IEEE-754 float32.

    Object type 1 is the requested bandwidth, 2 the bandwidth of an existing LSP being
    re-optimised.
    """

    CLASS: ClassVar[int] = ObjClass.BANDWIDTH
    bandwidth: float
    type: int = 1
    p: bool = False
    i: bool = False

    @property
    def object_class(self) -> int:
        return self.CLASS

    @property
    def object_type(self) -> int:
        return self.type

    def encode(self) -> bytes:
        if self.type not in (1, 2):
            raise EncodeError("pcep.BANDWIDTH.type", f"{self.type} is not 1 or 2")
        return _object(self.CLASS, self.type, self.p, self.i, f32(self.bandwidth))

    @classmethod
    def decode_body(cls, r: Reader, p: bool, i: bool, otype: int = 1) -> Bandwidth:
        return cls(r.f32("bandwidth"), otype, p, i)


_OBJECTS.register((ObjClass.BANDWIDTH, 1), (ObjClass.BANDWIDTH, 2))(Bandwidth)


@_OBJECTS.register((ObjClass.METRIC, 1))
@dataclass(frozen=True, slots=True)
class Metric(_Fixed):
    """RFC 5440 §7.8: Reserved(16) | Flags(8: C, B) | T(8) | metric value (float32)."""

    CLASS: ClassVar[int] = ObjClass.METRIC
    TYPE: ClassVar[int] = 1
    metric_type: int
    value: float
    flags: int = 0
    p: bool = False
    i: bool = False

    def encode(self) -> bytes:
        body = b"\x00\x00" + u8(self.flags) + u8(self.metric_type) + f32(self.value)
        return _object(self.CLASS, self.TYPE, self.p, self.i, body)

    @classmethod
    def decode_body(cls, r: Reader, p: bool, i: bool) -> Metric:
        r.u16("reserved")
        flags = r.u8("flags")
        mtype = r.u8("type")
        return cls(mtype, r.f32("value"), flags, p, i)


class _RouteObject(_Fixed):
    __slots__ = ()
    subobjects: tuple[ero_codec.Subobject, ...]
    p: bool
    i: bool

    def encode(self) -> bytes:
        body = ero_codec.encode_subobjects(self.subobjects)
        return _object(self.CLASS, self.TYPE, self.p, self.i, body)


@_OBJECTS.register((ObjClass.ERO, 1))
@dataclass(frozen=True, slots=True)
class Ero(_RouteObject):
    """RFC 5440 §7.9: explicit route, subobjects of RFC 3209/3473/3477 and the QE one."""

    CLASS: ClassVar[int] = ObjClass.ERO
    TYPE: ClassVar[int] = 1
    subobjects: tuple[ero_codec.Subobject, ...] = ()
    p: bool = False
    i: bool = False

    @classmethod
    def decode_body(cls, r: Reader, p: bool, i: bool) -> Ero:
        subs = ero_codec.decode_subobjects(r.rest(), f"{r.where}.subobjects", r.code)
        return cls(tuple(subs), p, i)


@_OBJECTS.register((ObjClass.RRO, 1))
@dataclass(frozen=True, slots=True)
class Rro(_RouteObject):
    """RFC 5440 §7.10: recorded route."""

    CLASS: ClassVar[int] = ObjClass.RRO
    TYPE: ClassVar[int] = 1
    subobjects: tuple[ero_codec.Subobject, ...] = ()
    p: bool = False
    i: bool = False

    @classmethod
    def decode_body(cls, r: Reader, p: bool, i: bool) -> Rro:
        subs = ero_codec.decode_subobjects(r.rest(), f"{r.where}.subobjects", r.code)
        return cls(tuple(subs), p, i)


@_OBJECTS.register((ObjClass.IRO, 1))
@dataclass(frozen=True, slots=True)
class Iro(_RouteObject):
    """RFC 5440 §7.12: include route — network elements the path must traverse."""

    CLASS: ClassVar[int] = ObjClass.IRO
    TYPE: ClassVar[int] = 1
    subobjects: tuple[ero_codec.Subobject, ...] = ()
    p: bool = False
    i: bool = False

    @classmethod
    def decode_body(cls, r: Reader, p: bool, i: bool) -> Iro:
        subs = ero_codec.decode_subobjects(r.rest(), f"{r.where}.subobjects", r.code)
        return cls(tuple(subs), p, i)


@_OBJECTS.register((ObjClass.LSPA, 1))
@dataclass(frozen=True, slots=True)
class Lspa(_Fixed):
    """RFC 5440 §7.11: Exclude-any | Include-any | Include-all (32 each) |
    Setup Prio(8) | Holding Prio(8) | Flags(8, L) | Reserved(8), then TLVs."""

    CLASS: ClassVar[int] = ObjClass.LSPA
    TYPE: ClassVar[int] = 1
    exclude_any: int = 0
    include_any: int = 0
    include_all: int = 0
    setup_priority: int = 7
    holding_priority: int = 7
    flags: int = 0
    tlvs: tuple[Tlv, ...] = ()
    p: bool = False
    i: bool = False

    def encode(self) -> bytes:
        body = (
            u32(self.exclude_any)
            + u32(self.include_any)
            + u32(self.include_all)
            + u8(self.setup_priority)
            + u8(self.holding_priority)
            + u8(self.flags)
            + b"\x00"
            + encode_tlvs(self.tlvs)
        )
        return _object(self.CLASS, self.TYPE, self.p, self.i, body)

    @classmethod
    def decode_body(cls, r: Reader, p: bool, i: bool) -> Lspa:
        ex, ia, il = r.u32("exclude_any"), r.u32("include_any"), r.u32("include_all")
        sp, hp, fl = r.u8("setup_priority"), r.u8("holding_priority"), r.u8("flags")
        r.u8("reserved")
        return cls(ex, ia, il, sp, hp, fl, decode_tlvs(r), p, i)


@_OBJECTS.register((ObjClass.SVEC, 1))
@dataclass(frozen=True, slots=True)
class Svec(_Fixed):
    """RFC 5440 §7.13.2: Reserved(8) | Flags(24: S N L) | Request-ID-number #1..#m."""

    CLASS: ClassVar[int] = ObjClass.SVEC
    TYPE: ClassVar[int] = 1
    request_ids: tuple[int, ...] = ()
    flags: int = 0
    p: bool = False
    i: bool = False

    def encode(self) -> bytes:
        body = b"\x00" + self.flags.to_bytes(3, "big") + b"".join(u32(x) for x in self.request_ids)
        return _object(self.CLASS, self.TYPE, self.p, self.i, body)

    @classmethod
    def decode_body(cls, r: Reader, p: bool, i: bool) -> Svec:
        r.u8("reserved")
        flags = r.u24("flags")
        ids: list[int] = []
        while not r.at_end():
            ids.append(r.u32(f"request_id[{len(ids)}]"))
        return cls(tuple(ids), flags, p, i)


@_OBJECTS.register((ObjClass.NOTIFICATION, 1))
@dataclass(frozen=True, slots=True)
class Notification(_Fixed):
    """RFC 5440 §7.14: Reserved(8) | Flags(8) | Notification-type | Notification-value,
    then TLVs (OVERLOAD-DURATION)."""

    CLASS: ClassVar[int] = ObjClass.NOTIFICATION
    TYPE: ClassVar[int] = 1
    nt: int
    nv: int
    flags: int = 0
    tlvs: tuple[Tlv, ...] = ()
    p: bool = False
    i: bool = False

    def encode(self) -> bytes:
        body = b"\x00" + u8(self.flags) + u8(self.nt) + u8(self.nv) + encode_tlvs(self.tlvs)
        return _object(self.CLASS, self.TYPE, self.p, self.i, body)

    @classmethod
    def decode_body(cls, r: Reader, p: bool, i: bool) -> Notification:
        r.u8("reserved")
        flags, nt, nv = r.u8("flags"), r.u8("nt"), r.u8("nv")
        return cls(nt, nv, flags, decode_tlvs(r), p, i)


@_OBJECTS.register((ObjClass.PCEP_ERROR, 1))
@dataclass(frozen=True, slots=True)
class ErrorObject(_Fixed):
    """RFC 5440 §7.15 PCEP-ERROR: Reserved(8) | Flags(8) | Error-Type | Error-value,
    then TLVs (REQ-MISSING)."""

    CLASS: ClassVar[int] = ObjClass.PCEP_ERROR
    TYPE: ClassVar[int] = 1
    error_type: int
    error_value: int
    flags: int = 0
    tlvs: tuple[Tlv, ...] = ()
    p: bool = False
    i: bool = False

    @property
    def code(self) -> tuple[int, int]:
        return (self.error_type, self.error_value)

    def encode(self) -> bytes:
        body = (
            b"\x00"
            + u8(self.flags)
            + u8(self.error_type)
            + u8(self.error_value)
            + encode_tlvs(self.tlvs)
        )
        return _object(self.CLASS, self.TYPE, self.p, self.i, body)

    @classmethod
    def decode_body(cls, r: Reader, p: bool, i: bool) -> ErrorObject:
        r.u8("reserved")
        flags, et, ev = r.u8("flags"), r.u8("error_type"), r.u8("error_value")
        return cls(et, ev, flags, decode_tlvs(r), p, i)


@_OBJECTS.register((ObjClass.CLOSE, 1))
@dataclass(frozen=True, slots=True)
class CloseObject(_Fixed):
    """RFC 5440 §7.17: Reserved(16) | Flags(8) | Reason(8), then TLVs."""

    CLASS: ClassVar[int] = ObjClass.CLOSE
    TYPE: ClassVar[int] = 1
    reason: int = 1
    flags: int = 0
    tlvs: tuple[Tlv, ...] = ()
    p: bool = False
    i: bool = False

    def encode(self) -> bytes:
        body = b"\x00\x00" + u8(self.flags) + u8(self.reason) + encode_tlvs(self.tlvs)
        return _object(self.CLASS, self.TYPE, self.p, self.i, body)

    @classmethod
    def decode_body(cls, r: Reader, p: bool, i: bool) -> CloseObject:
        r.u16("reserved")
        flags = r.u8("flags")
        return cls(r.u8("reason"), flags, decode_tlvs(r), p, i)


@dataclass(frozen=True, slots=True)
class UnknownObject:
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
            out.append(Bandwidth.decode_body(body, p, i, otype))
        else:
            out.append(cls.decode_body(body, p, i))  # type: ignore[attr-defined]
        body.expect_end("length")
    return out
