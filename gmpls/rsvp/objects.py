"""RSVP-TE objects (RFC 2205 §3.1.2 and App. A, RFC 3209 §4, RFC 3473 §2-§9).

Every object is ``Length(2) Class-Num(1) C-Type(1)`` then a body; the length counts the
4-byte header and is a multiple of four. One frozen dataclass per (class, C-Type),
registered by ``(class, C-Type)``, which sets its ``class_num`` and ``c_type``; its body is
its :func:`~gmpls.layout.layout` (the IntServ objects write ``encode_body`` and
``decode_body`` side by side).

Unknown objects follow RFC 2205 §3.10, by the two top bits of the class number:

* ``0bbbbbbb`` unknown class → :class:`DecodeError` with RSVP code (13, class<<8|ctype),
  "Unknown object class"; the message is rejected with an error message;
* ``10bbbbbb`` → the object is ignored and dropped (not forwarded): decode leaves it out;
* ``11bbbbbb`` → ignored but forwarded unchanged: kept as :class:`UnknownObject` and
  re-encoded byte for byte.

A known class with an unknown C-Type gives (14, class<<8|ctype), "Unknown object C-Type".
A few classes this codec carries without interpreting (INTEGRITY, SCOPE, ADSPEC,
POLICY_DATA) decode to :class:`OpaqueObject`, which keeps the bytes.

Bandwidth (SENDER_TSPEC, FLOWSPEC): the IntServ token-bucket forms of RFC 2210 (C-Type 2),
as RFC 3471 §3.1.3/RFC 3473 §2.5 allow for any LSP: peak rate = token-bucket rate = the
LSP bandwidth in bytes per second. FLOWSPEC is Controlled-Load (service 5) or Guaranteed
(service 2, with its RSpec).
"""

from __future__ import annotations

import ipaddress
import math
import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self

from gmpls import ero
from gmpls.errors import DecodeError, EncodeError
from gmpls.layout import Records, Repeat, Tail, Wired, layout
from gmpls.registry import Registry
from gmpls.rsvp.constants import ClassNum, ErrorCode, RoutingProblem, TrafficControlError
from gmpls.wire import Reader, f32, pad4, u8, u16, u32

IPv4 = ipaddress.IPv4Address
IPv6 = ipaddress.IPv6Address


class RsvpObject(Protocol):
    @property
    def class_num(self) -> int: ...

    @property
    def c_type(self) -> int: ...

    def encode_body(self) -> bytes: ...


_REGISTRY: Registry[type] = Registry("RSVP object", attrs=("class_num", "c_type"))
_ZERO = IPv4(0)
#: classes carried opaquely (any C-Type accepted, bytes kept)
OPAQUE_CLASSES = frozenset(
    {ClassNum.INTEGRITY, ClassNum.SCOPE, ClassNum.ADSPEC, ClassNum.POLICY_DATA}
)


def known_class(class_num: int) -> bool:
    return class_num in OPAQUE_CLASSES or any(c == class_num for c, _ in _codes())


def _codes() -> list[tuple[int, int]]:
    return [c for c in _REGISTRY.codes() if isinstance(c, tuple)]


#: the bytes of objects encoded before, by the object's identity: a transit node sends on
#: most objects of the Path and the Resv it received (the same instances, from
#: :data:`_DECODED`), and a message is sent again on refresh. Objects are frozen, and an
#: entry holds its object, so an id is not reused while cached. Bounded: cleared when full.
_ENCODED_OBJ: dict[int, tuple[RsvpObject, bytes]] = {}
_ENCODED_OBJ_MAX = 4096


def encode_object(obj: RsvpObject) -> bytes:
    """Header + body; the body must already be a multiple of four bytes."""
    hit = _ENCODED_OBJ.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    body = obj.encode_body()
    length = 4 + len(body)
    if length % 4 or length > 0xFFFF:
        raise EncodeError(
            f"rsvp.object[{obj.class_num}/{obj.c_type}].length",
            f"{length} is not a multiple of 4 <= 65532",
        )
    wire = u16(length) + u8(obj.class_num) + u8(obj.c_type) + body
    if len(_ENCODED_OBJ) >= _ENCODED_OBJ_MAX:
        _ENCODED_OBJ.clear()
    _ENCODED_OBJ[id(obj)] = (obj, wire)
    return wire


def _check_float(r: Reader, v: float, name: str, code: tuple[int, int]) -> float:
    if math.isnan(v) or math.isinf(v) or v < 0:
        raise DecodeError(f"{r.where}.{name}", f"{v} is not a non-negative finite rate", code)
    return v


class _Object(Wired):
    """Base of the registered object classes; the registry sets ``class_num``/``c_type``."""

    __slots__ = ()
    class_num: ClassVar[int]
    c_type: ClassVar[int]


# --- SESSION (class 1) ------------------------------------------------------------------


@_REGISTRY.register((ClassNum.SESSION, 7))
@layout("tunnel_end:ipv4 reserved:x2 tunnel_id:u16 extended_tunnel_id:ipv4")
class SessionLspTunnelV4(_Object):
    """SESSION LSP_TUNNEL_IPv4 (RFC 3209 §4.6.1.1): endpoint, tunnel ID, extended ID."""

    tunnel_end: IPv4
    tunnel_id: int
    extended_tunnel_id: IPv4 = _ZERO


@_REGISTRY.register((ClassNum.SESSION, 1))
@layout("destination:ipv4 protocol:u8 flags:u8 dst_port:u16")
class SessionIpv4(_Object):
    """SESSION IPv4/UDP (RFC 2205 App. A.1)."""

    destination: IPv4
    protocol: int
    flags: int = 0
    dst_port: int = 0


# --- IF_ID TLVs (RFC 3471 §9.1.1), in RSVP_HOP and ERROR_SPEC C-Type 3 -------------------


@dataclass(frozen=True, slots=True)
class IfIdTlv:
    """One IF_ID TLV. Types: 1 IPv4 (address), 2 IPv6, 3 IF_INDEX (address + interface
    ID: an unnumbered interface, RFC 3477), 4 COMPONENT_IF_DOWNSTREAM, 5
    COMPONENT_IF_UPSTREAM (interface ID). Other types keep their raw value."""

    type: int
    address: IPv4 | IPv6 | None = None
    interface_id: int | None = None
    raw: bytes = b""

    IPV4: ClassVar[int] = 1
    IPV6: ClassVar[int] = 2
    IF_INDEX: ClassVar[int] = 3
    COMPONENT_DOWN: ClassVar[int] = 4
    COMPONENT_UP: ClassVar[int] = 5

    @classmethod
    def if_index(cls, router_id: IPv4, interface_id: int) -> IfIdTlv:
        return cls(cls.IF_INDEX, router_id, interface_id)

    def value(self) -> bytes:
        if self.type == self.IPV4 and isinstance(self.address, IPv4):
            return self.address.packed
        if self.type == self.IPV6 and isinstance(self.address, IPv6):
            return self.address.packed
        if (
            self.type == self.IF_INDEX
            and isinstance(self.address, IPv4)
            and self.interface_id is not None
        ):
            return self.address.packed + u32(self.interface_id)
        if self.type in (self.COMPONENT_DOWN, self.COMPONENT_UP) and self.interface_id is not None:
            return u32(self.interface_id)
        if self.type in (1, 2, 3, 4, 5):
            raise EncodeError(f"rsvp.if_id_tlv[{self.type}]", "fields do not match the type")
        return self.raw

    def encode(self) -> bytes:
        v = self.value()
        if len(v) % 4:
            raise EncodeError(f"rsvp.if_id_tlv[{self.type}]", "value not a multiple of 4 bytes")
        return u16(self.type) + u16(4 + len(v)) + v

    @classmethod
    def decode(cls, r: Reader, i: int) -> IfIdTlv:
        t = r.u16(f"tlv[{i}].type")
        length = r.u16(f"tlv[{i}].length")
        if length < 4 or length % 4:
            raise r.fail(f"tlv[{i}].length", f"{length} is not a multiple of 4 of at least 4")
        v = r.sub(length - 4, f"tlv[{i}]")
        fixed = {1: 4, 2: 16, 3: 8, 4: 4, 5: 4}
        if t in fixed and v.remaining != fixed[t]:
            raise v.fail("length", f"type {t} needs {fixed[t]} value bytes, has {v.remaining}")
        if t == cls.IPV4:
            return cls(t, v.ipv4("address"))
        if t == cls.IPV6:
            return cls(t, v.ipv6("address"))
        if t == cls.IF_INDEX:
            return cls(t, v.ipv4("address"), v.u32("interface_id"))
        if t in (cls.COMPONENT_DOWN, cls.COMPONENT_UP):
            return cls(t, None, v.u32("interface_id"))
        return cls(t, raw=v.rest())


def _decode_tlvs(r: Reader, name: str) -> tuple[IfIdTlv, ...]:
    out: list[IfIdTlv] = []
    while not r.at_end():
        out.append(IfIdTlv.decode(r, len(out)))
    return tuple(out)


#: the IF_ID TLVs that end an IF_ID RSVP_HOP or ERROR_SPEC
IF_ID_TLVS = Tail(lambda tlvs: b"".join(t.encode() for t in tlvs), _decode_tlvs)


# --- RSVP_HOP (class 3) ------------------------------------------------------------------


@_REGISTRY.register((ClassNum.RSVP_HOP, 1))
@layout("address:ipv4 lih:u32")
class RsvpHop(_Object):
    """RSVP_HOP IPv4 (RFC 2205 App. A.2): previous/next hop address and LIH."""

    address: IPv4
    lih: int = 0


@_REGISTRY.register((ClassNum.RSVP_HOP, 3))
@layout("address:ipv4 lih:u32", tlvs=IF_ID_TLVS)
class RsvpHopIfId(_Object):
    """IF_ID RSVP_HOP IPv4 (RFC 3473 §8.1.1): the control-channel hop address and LIH,
    then TLVs naming the data interface (IF_INDEX for an unnumbered interface)."""

    address: IPv4
    lih: int = 0
    tlvs: tuple[IfIdTlv, ...] = ()

    def data_interface(self) -> tuple[IPv4, int] | None:
        """(router ID, interface ID) of the first IF_INDEX TLV, if any."""
        for t in self.tlvs:
            if t.type == IfIdTlv.IF_INDEX and isinstance(t.address, IPv4):
                assert t.interface_id is not None
                return t.address, t.interface_id
        return None


# --- TIME_VALUES (class 5) ---------------------------------------------------------------


@_REGISTRY.register((ClassNum.TIME_VALUES, 1))
@layout("refresh_ms:u32")
class TimeValues(_Object):
    """TIME_VALUES (RFC 2205 App. A.4): the refresh period R in milliseconds."""

    refresh_ms: int


# --- ERROR_SPEC (class 6) ----------------------------------------------------------------


@_REGISTRY.register((ClassNum.ERROR_SPEC, 1))
@layout("node:ipv4 flags:u8 code:u8 value:u16")
class ErrorSpec(_Object):
    """ERROR_SPEC IPv4 (RFC 2205 App. A.5): node, flags (0x01 InPlace, 0x02 NotGuilty,
    RFC 3473 0x04 Path_State_Removed), error code and value."""

    node: IPv4
    code: int
    value: int = 0
    flags: int = 0


@_REGISTRY.register((ClassNum.ERROR_SPEC, 3))
@layout("node:ipv4 flags:u8 code:u8 value:u16", tlvs=IF_ID_TLVS)
class ErrorSpecIfId(_Object):
    """IF_ID ERROR_SPEC IPv4 (RFC 3473 §8.2): as C-Type 1, then IF_ID TLVs."""

    node: IPv4
    code: int
    value: int = 0
    flags: int = 0
    tlvs: tuple[IfIdTlv, ...] = ()


# --- STYLE (class 8) ---------------------------------------------------------------------


@_REGISTRY.register((ClassNum.STYLE, 1))
@layout("flags:u8 option:u24")
class StyleObj(_Object):
    """STYLE (RFC 2205 App. A.7): flags and the 24-bit option vector (FF 0x0A, SE 0x12)."""

    option: int
    flags: int = 0


# --- IntServ SENDER_TSPEC / FLOWSPEC (RFC 2210 §3.1, §3.2, §3.3) ---------------------------


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """The token-bucket TSpec (parameter 127): rates in bytes/s, sizes in bytes."""

    rate: float
    size: float
    peak: float
    min_policed: int = 0
    max_packet: int = 0

    @classmethod
    def for_bandwidth(cls, bytes_per_s: float) -> TokenBucket:
        """RFC 3471 §3.1.3 bandwidth encoding: rate = peak = bandwidth, size = 0... the
        bucket size is set to the rate (one second's worth) as most implementations do."""
        return cls(bytes_per_s, bytes_per_s, bytes_per_s, 0, 0)

    def encode(self) -> bytes:
        return (
            u8(127)
            + u8(0)
            + u16(5)
            + f32(self.rate)
            + f32(self.size)
            + f32(self.peak)
            + u32(self.min_policed)
            + u32(self.max_packet)
        )

    @classmethod
    def decode(cls, r: Reader, code: tuple[int, int]) -> TokenBucket:
        pid = r.u8("tspec.param_id")
        r.u8("tspec.param_flags")
        plen = r.u16("tspec.param_length")
        if pid != 127 or plen != 5:
            raise DecodeError(
                f"{r.where}.tspec", f"expected token bucket 127/5, got {pid}/{plen}", code
            )
        rate = _check_float(r, r.f32("tspec.rate"), "tspec.rate", code)
        size = _check_float(r, r.f32("tspec.size"), "tspec.size", code)
        peak = _check_float(r, r.f32("tspec.peak"), "tspec.peak", code)
        return cls(rate, size, peak, r.u32("tspec.min_policed"), r.u32("tspec.max_packet"))


def _intserv_header(service: int, words: int) -> bytes:
    return u8(0) + u8(0) + u16(words + 1) + u8(service) + u8(0) + u16(words)


def _intserv_open(r: Reader, code: tuple[int, int]) -> tuple[int, int]:
    version = r.u8("version") >> 4
    r.u8("reserved")
    overall = r.u16("overall_length")
    if version != 0 or overall * 4 != r.remaining:
        raise DecodeError(
            f"{r.where}.overall_length",
            f"version {version}, {overall} words for {r.remaining} bytes",
            code,
        )
    service = r.u8("service")
    r.u8("service_flags")
    words = r.u16("service_length")
    if words != overall - 1:
        raise DecodeError(f"{r.where}.service_length", f"{words} != {overall - 1}", code)
    return service, words


@_REGISTRY.register((ClassNum.SENDER_TSPEC, 2))
@dataclass(frozen=True, slots=True)
class SenderTspec(_Object):
    """IntServ SENDER_TSPEC (RFC 2210 §3.1): service 1 (default), token bucket."""

    tspec: TokenBucket

    def encode_body(self) -> bytes:
        return _intserv_header(1, 6) + self.tspec.encode()

    @classmethod
    def decode_body(cls, r: Reader, **extra: Any) -> Self:
        code = (ErrorCode.TRAFFIC_CONTROL_ERROR, TrafficControlError.BAD_TSPEC)
        service, words = _intserv_open(r, code)
        if service != 1 or words != 6:
            raise DecodeError(f"{r.where}.service", f"service {service}/{words} words", code)
        return cls(TokenBucket.decode(r, code))


@_REGISTRY.register((ClassNum.FLOWSPEC, 2))
@dataclass(frozen=True, slots=True)
class Flowspec(_Object):
    """IntServ FLOWSPEC (RFC 2210 §3.2/§3.3): Controlled-Load (service 5) with its
    token bucket, or Guaranteed (service 2) with the token bucket and RSpec (R, S)."""

    tspec: TokenBucket
    service: int = 5
    rspec_rate: float = 0.0
    rspec_slack: int = 0

    CONTROLLED_LOAD: ClassVar[int] = 5
    GUARANTEED: ClassVar[int] = 2

    def encode_body(self) -> bytes:
        if self.service == self.CONTROLLED_LOAD:
            return _intserv_header(5, 6) + self.tspec.encode()
        if self.service == self.GUARANTEED:
            return (
                _intserv_header(2, 9)
                + self.tspec.encode()
                + u8(130)
                + u8(0)
                + u16(2)
                + f32(self.rspec_rate)
                + u32(self.rspec_slack)
            )
        raise EncodeError("rsvp.FLOWSPEC.service", f"unsupported service {self.service}")

    @classmethod
    def decode_body(cls, r: Reader, **extra: Any) -> Self:
        code = (ErrorCode.TRAFFIC_CONTROL_ERROR, TrafficControlError.BAD_FLOWSPEC)
        service, words = _intserv_open(r, code)
        if service == cls.CONTROLLED_LOAD and words == 6:
            return cls(TokenBucket.decode(r, code), service)
        if service == cls.GUARANTEED and words == 9:
            tb = TokenBucket.decode(r, code)
            pid = r.u8("rspec.param_id")
            r.u8("rspec.flags")
            plen = r.u16("rspec.param_length")
            if pid != 130 or plen != 2:
                raise DecodeError(f"{r.where}.rspec", f"expected 130/2, got {pid}/{plen}", code)
            rate = _check_float(r, r.f32("rspec.rate"), "rspec.rate", code)
            return cls(tb, service, rate, r.u32("rspec.slack"))
        raise DecodeError(
            f"{r.where}.service",
            f"unsupported IntServ service {service} with {words} words",
            (ErrorCode.TRAFFIC_CONTROL_ERROR, TrafficControlError.SERVICE_UNSUPPORTED),
        )


# --- FILTER_SPEC / SENDER_TEMPLATE LSP_TUNNEL_IPv4 (classes 10, 11) ----------------------


@layout("sender:ipv4 reserved:x2 lsp_id:u16")
class _LspTunnelSender(_Object):
    sender: IPv4
    lsp_id: int


@_REGISTRY.register((ClassNum.FILTER_SPEC, 7))
class FilterSpec(_LspTunnelSender):
    """FILTER_SPEC LSP_TUNNEL_IPv4 (RFC 3209 §4.6.2.1): sender address and LSP ID."""

    __slots__ = ()


@_REGISTRY.register((ClassNum.SENDER_TEMPLATE, 7))
class SenderTemplate(_LspTunnelSender):
    """SENDER_TEMPLATE LSP_TUNNEL_IPv4 (RFC 3209 §4.6.2.1)."""

    __slots__ = ()


# --- RESV_CONFIRM (class 15) -------------------------------------------------------------


@_REGISTRY.register((ClassNum.RESV_CONFIRM, 1))
@layout("receiver:ipv4")
class ResvConfirm(_Object):
    """RESV_CONFIRM IPv4 (RFC 2205 App. A.11): the receiver asking for confirmation."""

    receiver: IPv4


# --- labels (classes 16, 35, 129, 36) ----------------------------------------------------


@_REGISTRY.register((ClassNum.LABEL, 1))
@layout("label:u32")
class MplsLabel(_Object):
    """LABEL C-Type 1 (RFC 3209 §4.1): a 20-bit MPLS label, right aligned."""

    label: int


@layout("label:u32")
class _GenLabel(_Object):
    label: int

    @classmethod
    def decode_body(cls, r: Reader, **extra: Any) -> Self:
        if r.remaining != 4:
            raise r.fail(
                "label",
                f"generalized label of {r.remaining} bytes; only 32-bit labels are supported",
            )
        label: Self = cls.WIRE.decode(cls, r, **extra)
        return label


@_REGISTRY.register((ClassNum.LABEL, 2))
class GeneralizedLabel(_GenLabel):
    """Generalized LABEL (RFC 3473 §2.3): here a 32-bit RFC 6205 lambda label."""

    __slots__ = ()


@_REGISTRY.register((ClassNum.UPSTREAM_LABEL, 2))
class UpstreamLabel(_GenLabel):
    """UPSTREAM_LABEL, generalized (RFC 3473 §3.1): the label for the reverse direction."""

    __slots__ = ()


@_REGISTRY.register((ClassNum.SUGGESTED_LABEL, 2))
class SuggestedLabel(_GenLabel):
    """SUGGESTED_LABEL, generalized (RFC 3473 §2.4)."""

    __slots__ = ()


@_REGISTRY.register((ClassNum.LABEL_SET, 1))
@layout("action:u8 reserved:x1 label_type:u16", labels=Repeat("u32"))
class LabelSet(_Object):
    """LABEL_SET (RFC 3473 §2.6): action (0 inclusive list, 1 exclusive list, 2 inclusive
    range, 3 exclusive range), label type, labels. An explicit label of an ERO Label
    subobject reaches the next hop as an inclusive list of one (RFC 3473 §5.1.1)."""

    labels: tuple[int, ...]
    action: int = 0
    label_type: int = 2


# --- LABEL_REQUEST (class 19) ------------------------------------------------------------


@_REGISTRY.register((ClassNum.LABEL_REQUEST, 4))
@layout("encoding:u8 switching:u8 gpid:u16")
class GeneralizedLabelRequest(_Object):
    """Generalized LABEL_REQUEST (RFC 3473 §2.1): LSP encoding type, switching type,
    G-PID (RFC 3471 §3.1.1)."""

    encoding: int
    switching: int
    gpid: int


@_REGISTRY.register((ClassNum.LABEL_REQUEST, 1))
@layout("reserved:x2 l3pid:u16")
class LabelRequest(_Object):
    """LABEL_REQUEST without label range (RFC 3209 §4.2.1): L3PID."""

    l3pid: int = 0x0800


# --- EXPLICIT_ROUTE / RECORD_ROUTE (classes 20, 21) --------------------------------------


@_REGISTRY.register((ClassNum.EXPLICIT_ROUTE, 1))
@layout(subobjects=ero.subobjects((ErrorCode.ROUTING_PROBLEM, RoutingProblem.BAD_EXPLICIT_ROUTE)))
class ExplicitRoute(_Object):
    """EXPLICIT_ROUTE (RFC 3209 §4.3), subobjects from :mod:`gmpls.ero` (the QE
    subobject included). A malformed one is (24, 1) "Bad EXPLICIT_ROUTE object"."""

    subobjects: tuple[ero.Subobject, ...]


@_REGISTRY.register((ClassNum.RECORD_ROUTE, 1))
@layout(subobjects=ero.subobjects())
class RecordRoute(_Object):
    """RECORD_ROUTE (RFC 3209 §4.4, RFC 3473 §5.2 label subobjects)."""

    subobjects: tuple[ero.Subobject, ...]


# --- HELLO (class 22), MESSAGE_ID (23), MESSAGE_ID_ACK/NACK (24) ------------------------


@layout("src_instance:u32 dst_instance:u32")
class _Hello(_Object):
    src_instance: int
    dst_instance: int


@_REGISTRY.register((ClassNum.HELLO, 1))
class HelloRequest(_Hello):
    """HELLO REQUEST (RFC 3209 §5.2): source and destination instances."""

    __slots__ = ()


@_REGISTRY.register((ClassNum.HELLO, 2))
class HelloAck(_Hello):
    """HELLO ACK (RFC 3209 §5.3)."""

    __slots__ = ()


@layout("flags:u8 epoch:u24 message_id:u32")
class _MsgId(_Object):
    message_id: int
    epoch: int = 0
    flags: int = 0


@_REGISTRY.register((ClassNum.MESSAGE_ID, 1))
class MessageId(_MsgId):
    """MESSAGE_ID (RFC 2961 §4.1): flags (0x01 ACK_Desired), epoch, message ID."""

    __slots__ = ()


@_REGISTRY.register((ClassNum.MESSAGE_ID_ACK, 1))
class MessageIdAck(_MsgId):
    """MESSAGE_ID_ACK (RFC 2961 §4.2)."""

    __slots__ = ()


@_REGISTRY.register((ClassNum.MESSAGE_ID_ACK, 2))
class MessageIdNack(_MsgId):
    """MESSAGE_ID_NACK (RFC 2961 §4.3)."""

    __slots__ = ()


# --- MESSAGE_ID_LIST (class 25): the Srefresh lists (RFC 2961 §5.1) ----------------------


@_REGISTRY.register((ClassNum.MESSAGE_ID_LIST, 1))
@layout("flags:u8 epoch:u24", message_ids=Repeat("u32"))
class MessageIdList(_Object):
    """MESSAGE_ID_LIST (RFC 2961 §5.1): the sender's epoch, then the Message IDs of the
    Path and Resv state it refreshes (no flags are defined)."""

    message_ids: tuple[int, ...]
    epoch: int = 0
    flags: int = 0


@dataclass(frozen=True, slots=True)
class SrcListEntry:
    """One entry of a MESSAGE_ID SRC_LIST: a Message ID and the Path's source address."""

    message_id: int
    source: IPv4


@dataclass(frozen=True, slots=True)
class McastListEntry:
    """One entry of a MESSAGE_ID MCAST_LIST: Message ID, Path source and destination."""

    message_id: int
    source: IPv4
    destination: IPv4


@_REGISTRY.register((ClassNum.MESSAGE_ID_LIST, 2))
@layout("flags:u8 epoch:u24", entries=Records(SrcListEntry, "message_id:u32 source:ipv4"))
class MessageIdSrcList(_Object):
    """IPv4 MESSAGE_ID SRC_LIST (RFC 2961 §5.1): (Message ID, source address) pairs."""

    entries: tuple[SrcListEntry, ...]
    epoch: int = 0
    flags: int = 0

    @property
    def message_ids(self) -> tuple[int, ...]:
        return tuple(e.message_id for e in self.entries)


@_REGISTRY.register((ClassNum.MESSAGE_ID_LIST, 4))
@layout(
    "flags:u8 epoch:u24",
    entries=Records(McastListEntry, "message_id:u32 source:ipv4 destination:ipv4"),
)
class MessageIdMcastList(_Object):
    """IPv4 MESSAGE_ID MCAST_LIST (RFC 2961 §5.1): (Message ID, source, destination)."""

    entries: tuple[McastListEntry, ...]
    epoch: int = 0
    flags: int = 0

    @property
    def message_ids(self) -> tuple[int, ...]:
        return tuple(e.message_id for e in self.entries)


# --- NOTIFY_REQUEST (195), ADMIN_STATUS (196), SESSION_ATTRIBUTE (207) -------------------


@_REGISTRY.register((ClassNum.NOTIFY_REQUEST, 1))
@layout("notify_node:ipv4")
class NotifyRequest(_Object):
    """NOTIFY_REQUEST IPv4 (RFC 3473 §4.2.1): where to send Notify messages."""

    notify_node: IPv4


@_REGISTRY.register((ClassNum.ADMIN_STATUS, 1))
@layout("bits:u32")
class AdminStatus(_Object):
    """ADMIN_STATUS (RFC 3473 §7.1): R (reflect, 0x80000000), T testing (4),
    A administratively down (2), D deletion in progress (1)."""

    bits: int = 0

    REFLECT: ClassVar[int] = 0x80000000
    TESTING: ClassVar[int] = 0x4
    ADMIN_DOWN: ClassVar[int] = 0x2
    DELETION: ClassVar[int] = 0x1


def _name_body(name: str) -> bytes:
    raw = name.encode("latin-1")
    if len(raw) > 255:
        raise EncodeError("rsvp.SESSION_ATTRIBUTE.name", "longer than 255 bytes")
    return u8(len(raw)) + raw + bytes(pad4(len(raw)))


def _name_decode(r: Reader, field: str) -> str:
    """Name length, name, then NUL padding to the next 4-byte boundary (the fields before
    the name are a multiple of four bytes minus one in both C-Types)."""
    n = r.u8("name_length")
    raw = r.bytes(n, field)
    padding = r.rest()
    if len(padding) != pad4(n):
        raise r.fail(field, f"{len(padding)} padding bytes after a {n}-byte name")
    return raw.decode("latin-1")


#: SESSION_ATTRIBUTE's session name, the tail of both C-Types
_NAME = Tail(_name_body, _name_decode)


@_REGISTRY.register((ClassNum.SESSION_ATTRIBUTE, 7))
@layout("setup_priority:u8 hold_priority:u8 flags:u8", name=_NAME)
class SessionAttribute(_Object):
    """SESSION_ATTRIBUTE without resource affinities (RFC 3209 §4.7.1)."""

    name: str
    setup_priority: int = 7
    hold_priority: int = 7
    flags: int = 0


@_REGISTRY.register((ClassNum.SESSION_ATTRIBUTE, 1))
@layout(
    "exclude_any:u32 include_any:u32 include_all:u32 setup_priority:u8 hold_priority:u8 flags:u8",
    name=_NAME,
)
class SessionAttributeRa(_Object):
    """SESSION_ATTRIBUTE with resource affinities (RFC 3209 §4.7.2)."""

    name: str
    exclude_any: int = 0
    include_any: int = 0
    include_all: int = 0
    setup_priority: int = 7
    hold_priority: int = 7
    flags: int = 0


# --- generic objects ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _RawObject:
    class_num: int
    c_type: int
    data: bytes = field(default=b"")

    def encode_body(self) -> bytes:
        return self.data


class OpaqueObject(_RawObject):
    """An object of a class carried without interpretation (INTEGRITY, SCOPE, ADSPEC,
    POLICY_DATA): any C-Type, bytes kept."""

    __slots__ = ()


class UnknownObject(_RawObject):
    """An object of unknown class ``11bbbbbb``: ignored, forwarded unchanged (RFC 2205
    §3.10)."""

    __slots__ = ()


_CLASS_NAMES = {c.value: c.name for c in ClassNum}
#: the object header (RFC 2205 §3.1.2): length, Class-Num, C-Type
_OBJECT_HEADER = struct.Struct("!HBB")


#: objects decoded before, by their bytes (header included): a node sees the same
#: objects again and again (every message of an LSP carries its SESSION and
#: SENDER_TEMPLATE, every Path from a neighbour the same TIME_VALUES, LABEL_REQUEST,
#: SENDER_TSPEC and LABEL_SET, a refresh all of them), and objects are immutable, so the
#: object decoded from the same bytes is the same one. Only what decoded without error is
#: kept; bounded (cleared when full), so a peer sending ever new objects costs a
#: clear now and then, not memory.
_DECODED: dict[bytes, RsvpObject] = {}
_DECODED_MAX = 4096


def decode_object(r: Reader, i: int) -> RsvpObject | None:
    """One object from ``r``; ``None`` for an unknown class ``10bbbbbb`` (dropped)."""
    p = r.pos
    if r.end - p < 4:  # the error names the first field missing (formatted only then)
        r.u16(f"object[{i}].length")
        r.u8(f"object[{i}].class_num")
        r.u8(f"object[{i}].c_type")
    length, class_num, c_type = _OBJECT_HEADER.unpack_from(r.data, p)
    if 4 <= length <= r.end - p:
        wire = bytes(r.data[p : p + length])
        hit = _DECODED.get(wire)
        if hit is not None:
            r.pos = p + length
            return hit
    else:
        wire = b""
    r.pos = p + 4
    if length < 4 or length % 4:
        raise r.fail(f"object[{i}].length", f"{length} is not a multiple of 4 of at least 4")
    name = _CLASS_NAMES.get(class_num) or str(class_num)
    body = r.sub(length - 4, name)
    cls = _REGISTRY.get((class_num, c_type))
    if cls is not None:
        obj: RsvpObject = cls.decode_body(body)  # type: ignore[attr-defined]
        body.expect_end("length")
        if wire:
            if len(_DECODED) >= _DECODED_MAX:
                _DECODED.clear()
            _DECODED[wire] = obj
        return obj
    if class_num in OPAQUE_CLASSES:
        return OpaqueObject(class_num, c_type, body.rest())
    value = (class_num << 8) | c_type
    if known_class(class_num):
        raise DecodeError(
            f"{r.where}.{name}.c_type",
            f"unknown C-Type {c_type}",
            (ErrorCode.UNKNOWN_CTYPE, value),
        )
    top = class_num >> 6
    if top == 0b11:
        return UnknownObject(class_num, c_type, body.rest())
    if top == 0b10:
        return None
    raise DecodeError(
        f"{r.where}.object[{i}].class_num",
        f"unknown object class {class_num}",
        (ErrorCode.UNKNOWN_OBJECT_CLASS, value),
    )
