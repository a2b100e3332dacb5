"""RSVP-TE objects (RFC 2205 §3.1.2 and App. A, RFC 3209 §4, RFC 3473 §2-§9).

Every object is ``Length(2) Class-Num(1) C-Type(1)`` then a body; the length counts the
4-byte header and is a multiple of four. One frozen dataclass per (class, C-Type), each
with ``body()`` and ``decode_body(reader)`` side by side, registered by ``(class, ctype)``.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from gmpls import ero
from gmpls.errors import DecodeError, EncodeError
from gmpls.registry import Registry
from gmpls.rsvp.constants import ClassNum, ErrorCode, RoutingProblem, TrafficControlError
from gmpls.wire import Reader, f32, pad4, u8, u16, u24, u32

IPv4 = ipaddress.IPv4Address
IPv6 = ipaddress.IPv6Address


class RsvpObject(Protocol):
    @property
    def class_num(self) -> int: ...

    @property
    def c_type(self) -> int: ...

    def body(self) -> bytes: ...


_REGISTRY: Registry[type] = Registry("RSVP object")
_ZERO = IPv4(0)
#: classes carried opaquely (any C-Type accepted, bytes kept)
OPAQUE_CLASSES = frozenset(
    {ClassNum.INTEGRITY, ClassNum.SCOPE, ClassNum.ADSPEC, ClassNum.POLICY_DATA}
)


def _reg(class_num: int, c_type: int) -> Callable[[type], type]:
    return _REGISTRY.register((class_num, c_type))


def known_class(class_num: int) -> bool:
    return class_num in OPAQUE_CLASSES or any(c == class_num for c, _ in _codes())


def _codes() -> list[tuple[int, int]]:
    return [c for c in _REGISTRY.codes() if isinstance(c, tuple)]


def encode_object(obj: RsvpObject) -> bytes:
    """Header + body; the body must already be a multiple of four bytes."""
    body = obj.body()
    length = 4 + len(body)
    if length % 4 or length > 0xFFFF:
        raise EncodeError(
            f"rsvp.object[{obj.class_num}/{obj.c_type}].length",
            f"{length} is not a multiple of 4 <= 65532",
        )
    return u16(length) + u8(obj.class_num) + u8(obj.c_type) + body


def _check_float(r: Reader, v: float, name: str, code: tuple[int, int]) -> float:
    if math.isnan(v) or math.isinf(v) or v < 0:
        raise DecodeError(f"{r.where}.{name}", f"{v} is not a non-negative finite rate", code)
    return v


# --- SESSION (class 1) ------------------------------------------------------------------


@_reg(1, 7)
@dataclass(frozen=True, slots=True)
class SessionLspTunnelV4:
    """SESSION LSP_TUNNEL_IPv4 (RFC 3209 §4.6.1.1): endpoint, tunnel ID, extended ID."""

    class_num: ClassVar[int] = ClassNum.SESSION
    c_type: ClassVar[int] = 7
    tunnel_end: IPv4
    tunnel_id: int
    extended_tunnel_id: IPv4 = _ZERO

    def body(self) -> bytes:
        return (
            self.tunnel_end.packed + u16(0) + u16(self.tunnel_id) + self.extended_tunnel_id.packed
        )

    @classmethod
    def decode_body(cls, r: Reader) -> SessionLspTunnelV4:
        end = r.ipv4("tunnel_end")
        r.u16("reserved")
        return cls(end, r.u16("tunnel_id"), r.ipv4("extended_tunnel_id"))


@_reg(1, 1)
@dataclass(frozen=True, slots=True)
class SessionIpv4:
    """SESSION IPv4/UDP (RFC 2205 App. A.1)."""

    class_num: ClassVar[int] = ClassNum.SESSION
    c_type: ClassVar[int] = 1
    destination: IPv4
    protocol: int
    flags: int = 0
    dst_port: int = 0

    def body(self) -> bytes:
        return self.destination.packed + u8(self.protocol) + u8(self.flags) + u16(self.dst_port)

    @classmethod
    def decode_body(cls, r: Reader) -> SessionIpv4:
        return cls(r.ipv4("destination"), r.u8("protocol"), r.u8("flags"), r.u16("dst_port"))


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


def _decode_tlvs(r: Reader) -> tuple[IfIdTlv, ...]:
    out: list[IfIdTlv] = []
    while not r.at_end():
        out.append(IfIdTlv.decode(r, len(out)))
    return tuple(out)


# --- RSVP_HOP (class 3) ------------------------------------------------------------------


@_reg(3, 1)
@dataclass(frozen=True, slots=True)
class RsvpHop:
    """RSVP_HOP IPv4 (RFC 2205 App. A.2): previous/next hop address and LIH."""

    class_num: ClassVar[int] = ClassNum.RSVP_HOP
    c_type: ClassVar[int] = 1
    address: IPv4
    lih: int = 0

    def body(self) -> bytes:
        return self.address.packed + u32(self.lih)

    @classmethod
    def decode_body(cls, r: Reader) -> RsvpHop:
        return cls(r.ipv4("address"), r.u32("lih"))


@_reg(3, 3)
@dataclass(frozen=True, slots=True)
class RsvpHopIfId:
    """IF_ID RSVP_HOP IPv4 (RFC 3473 §8.1.1): the control-channel hop address and LIH,
    then TLVs naming the data interface (IF_INDEX for an unnumbered interface)."""

    class_num: ClassVar[int] = ClassNum.RSVP_HOP
    c_type: ClassVar[int] = 3
    address: IPv4
    lih: int = 0
    tlvs: tuple[IfIdTlv, ...] = ()

    def body(self) -> bytes:
        return self.address.packed + u32(self.lih) + b"".join(t.encode() for t in self.tlvs)

    @classmethod
    def decode_body(cls, r: Reader) -> RsvpHopIfId:
        return cls(r.ipv4("address"), r.u32("lih"), _decode_tlvs(r))

    def data_interface(self) -> tuple[IPv4, int] | None:
        """(router ID, interface ID) of the first IF_INDEX TLV, if any."""
        for t in self.tlvs:
            if t.type == IfIdTlv.IF_INDEX and isinstance(t.address, IPv4):
                assert t.interface_id is not None
                return t.address, t.interface_id
        return None


# --- TIME_VALUES (class 5) ---------------------------------------------------------------


@_reg(5, 1)
@dataclass(frozen=True, slots=True)
class TimeValues:
    """TIME_VALUES (RFC 2205 App. A.4): the refresh period R in milliseconds."""

    class_num: ClassVar[int] = ClassNum.TIME_VALUES
    c_type: ClassVar[int] = 1
    refresh_ms: int

    def body(self) -> bytes:
        return u32(self.refresh_ms)

    @classmethod
    def decode_body(cls, r: Reader) -> TimeValues:
        return cls(r.u32("refresh_ms"))


# --- ERROR_SPEC (class 6) ----------------------------------------------------------------


@_reg(6, 1)
@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """ERROR_SPEC IPv4 (RFC 2205 App. A.5): node, flags (0x01 InPlace, 0x02 NotGuilty,
    RFC 3473 0x04 Path_State_Removed), error code and value."""

    class_num: ClassVar[int] = ClassNum.ERROR_SPEC
    c_type: ClassVar[int] = 1
    node: IPv4
    code: int
    value: int = 0
    flags: int = 0

    def body(self) -> bytes:
        return self.node.packed + u8(self.flags) + u8(self.code) + u16(self.value)

    @classmethod
    def decode_body(cls, r: Reader) -> ErrorSpec:
        node = r.ipv4("node")
        flags = r.u8("flags")
        return cls(node, r.u8("code"), r.u16("value"), flags)


@_reg(6, 3)
@dataclass(frozen=True, slots=True)
class ErrorSpecIfId:
    """IF_ID ERROR_SPEC IPv4 (RFC 3473 §8.2): as C-Type 1, then IF_ID TLVs."""

    class_num: ClassVar[int] = ClassNum.ERROR_SPEC
    c_type: ClassVar[int] = 3
    node: IPv4
    code: int
    value: int = 0
    flags: int = 0
    tlvs: tuple[IfIdTlv, ...] = ()

    def body(self) -> bytes:
        return (
            self.node.packed
            + u8(self.flags)
            + u8(self.code)
            + u16(self.value)
            + b"".join(t.encode() for t in self.tlvs)
        )

    @classmethod
    def decode_body(cls, r: Reader) -> ErrorSpecIfId:
        node = r.ipv4("node")
        flags = r.u8("flags")
        code = r.u8("code")
        return cls(node, code, r.u16("value"), flags, _decode_tlvs(r))


# --- STYLE (class 8) ---------------------------------------------------------------------


@_reg(8, 1)
@dataclass(frozen=True, slots=True)
class StyleObj:
    """STYLE (RFC 2205 App. A.7): flags and the 24-bit option vector (FF 0x0A, SE 0x12)."""

    class_num: ClassVar[int] = ClassNum.STYLE
    c_type: ClassVar[int] = 1
    option: int
    flags: int = 0

    def body(self) -> bytes:
        return u8(self.flags) + u24(self.option)

    @classmethod
    def decode_body(cls, r: Reader) -> StyleObj:
        flags = r.u8("flags")
        return cls(r.u24("option_vector"), flags)


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


@_reg(12, 2)
@dataclass(frozen=True, slots=True)
class SenderTspec:
    """IntServ SENDER_TSPEC (RFC 2210 §3.1): service 1 (default), token bucket."""

    class_num: ClassVar[int] = ClassNum.SENDER_TSPEC
    c_type: ClassVar[int] = 2
    tspec: TokenBucket

    def body(self) -> bytes:
        return _intserv_header(1, 6) + self.tspec.encode()

    @classmethod
    def decode_body(cls, r: Reader) -> SenderTspec:
        code = (ErrorCode.TRAFFIC_CONTROL_ERROR, TrafficControlError.BAD_TSPEC)
        service, words = _intserv_open(r, code)
        if service != 1 or words != 6:
            raise DecodeError(f"{r.where}.service", f"service {service}/{words} words", code)
        return cls(TokenBucket.decode(r, code))


@_reg(9, 2)
@dataclass(frozen=True, slots=True)
class Flowspec:
    """IntServ FLOWSPEC (RFC 2210 §3.2/§3.3): Controlled-Load (service 5) with its
    token bucket, or Guaranteed (service 2) with the token bucket and RSpec (R, S)."""

    class_num: ClassVar[int] = ClassNum.FLOWSPEC
    c_type: ClassVar[int] = 2
    tspec: TokenBucket
    service: int = 5
    rspec_rate: float = 0.0
    rspec_slack: int = 0

    CONTROLLED_LOAD: ClassVar[int] = 5
    GUARANTEED: ClassVar[int] = 2

    def body(self) -> bytes:
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
    def decode_body(cls, r: Reader) -> Flowspec:
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


@dataclass(frozen=True, slots=True)
class _LspTunnelSender:
    sender: IPv4
    lsp_id: int

    def body(self) -> bytes:
        return self.sender.packed + u16(0) + u16(self.lsp_id)


@_reg(10, 7)
@dataclass(frozen=True, slots=True)
class FilterSpec(_LspTunnelSender):
    """FILTER_SPEC LSP_TUNNEL_IPv4 (RFC 3209 §4.6.2.1): sender address and LSP ID."""

    class_num: ClassVar[int] = ClassNum.FILTER_SPEC
    c_type: ClassVar[int] = 7

    @classmethod
    def decode_body(cls, r: Reader) -> FilterSpec:
        s = r.ipv4("sender")
        r.u16("reserved")
        return cls(s, r.u16("lsp_id"))


@_reg(11, 7)
@dataclass(frozen=True, slots=True)
class SenderTemplate(_LspTunnelSender):
    """SENDER_TEMPLATE LSP_TUNNEL_IPv4 (RFC 3209 §4.6.2.1)."""

    class_num: ClassVar[int] = ClassNum.SENDER_TEMPLATE
    c_type: ClassVar[int] = 7

    @classmethod
    def decode_body(cls, r: Reader) -> SenderTemplate:
        s = r.ipv4("sender")
        r.u16("reserved")
        return cls(s, r.u16("lsp_id"))


# --- RESV_CONFIRM (class 15) -------------------------------------------------------------


@_reg(15, 1)
@dataclass(frozen=True, slots=True)
class ResvConfirm:
    """RESV_CONFIRM IPv4 (RFC 2205 App. A.11): the receiver asking for confirmation."""

    class_num: ClassVar[int] = ClassNum.RESV_CONFIRM
    c_type: ClassVar[int] = 1
    receiver: IPv4

    def body(self) -> bytes:
        return self.receiver.packed

    @classmethod
    def decode_body(cls, r: Reader) -> ResvConfirm:
        return cls(r.ipv4("receiver"))


# --- labels (classes 16, 35, 129, 36) ----------------------------------------------------


@_reg(16, 1)
@dataclass(frozen=True, slots=True)
class MplsLabel:
    """LABEL C-Type 1 (RFC 3209 §4.1): a 20-bit MPLS label, right aligned."""

    class_num: ClassVar[int] = ClassNum.LABEL
    c_type: ClassVar[int] = 1
    label: int

    def body(self) -> bytes:
        return u32(self.label)

    @classmethod
    def decode_body(cls, r: Reader) -> MplsLabel:
        return cls(r.u32("label"))


@dataclass(frozen=True, slots=True)
class _GenLabel:
    label: int

    def body(self) -> bytes:
        return u32(self.label)


def _gen_label_value(r: Reader) -> int:
    if r.remaining != 4:
        raise r.fail(
            "label",
            f"generalized label of {r.remaining} bytes; only 32-bit labels are supported",
        )
    return r.u32("label")


@_reg(16, 2)
@dataclass(frozen=True, slots=True)
class GeneralizedLabel(_GenLabel):
    """Generalized LABEL (RFC 3473 §2.3): here a 32-bit RFC 6205 lambda label."""

    class_num: ClassVar[int] = ClassNum.LABEL
    c_type: ClassVar[int] = 2

    @classmethod
    def decode_body(cls, r: Reader) -> GeneralizedLabel:
        return cls(_gen_label_value(r))


@_reg(35, 2)
@dataclass(frozen=True, slots=True)
class UpstreamLabel(_GenLabel):
    """UPSTREAM_LABEL, generalized (RFC 3473 §3.1): the label for the reverse direction."""

    class_num: ClassVar[int] = ClassNum.UPSTREAM_LABEL
    c_type: ClassVar[int] = 2

    @classmethod
    def decode_body(cls, r: Reader) -> UpstreamLabel:
        return cls(_gen_label_value(r))


@_reg(129, 2)
@dataclass(frozen=True, slots=True)
class SuggestedLabel(_GenLabel):
    """SUGGESTED_LABEL, generalized (RFC 3473 §2.4)."""

    class_num: ClassVar[int] = ClassNum.SUGGESTED_LABEL
    c_type: ClassVar[int] = 2

    @classmethod
    def decode_body(cls, r: Reader) -> SuggestedLabel:
        return cls(_gen_label_value(r))


@_reg(36, 1)
@dataclass(frozen=True, slots=True)
class LabelSet:
    """LABEL_SET (RFC 3473 §2.6): action (0 inclusive list, 1 exclusive list, 2 inclusive
    range, 3 exclusive range), label type, labels. An explicit label of an ERO Label
    subobject reaches the next hop as an inclusive list of one (RFC 3473 §5.1.1)."""

    class_num: ClassVar[int] = ClassNum.LABEL_SET
    c_type: ClassVar[int] = 1
    labels: tuple[int, ...]
    action: int = 0
    label_type: int = 2

    def body(self) -> bytes:
        return (
            u8(self.action) + u8(0) + u16(self.label_type) + b"".join(u32(x) for x in self.labels)
        )

    @classmethod
    def decode_body(cls, r: Reader) -> LabelSet:
        action = r.u8("action")
        r.u8("reserved")
        lt = r.u16("label_type")
        labels: list[int] = []
        while not r.at_end():
            labels.append(r.u32(f"label[{len(labels)}]"))
        return cls(tuple(labels), action, lt)


# --- LABEL_REQUEST (class 19) ------------------------------------------------------------


@_reg(19, 4)
@dataclass(frozen=True, slots=True)
class GeneralizedLabelRequest:
    """Generalized LABEL_REQUEST (RFC 3473 §2.1): LSP encoding type, switching type,
    G-PID (RFC 3471 §3.1.1)."""

    class_num: ClassVar[int] = ClassNum.LABEL_REQUEST
    c_type: ClassVar[int] = 4
    encoding: int
    switching: int
    gpid: int

    def body(self) -> bytes:
        return u8(self.encoding) + u8(self.switching) + u16(self.gpid)

    @classmethod
    def decode_body(cls, r: Reader) -> GeneralizedLabelRequest:
        return cls(r.u8("lsp_encoding"), r.u8("switching_type"), r.u16("gpid"))


@_reg(19, 1)
@dataclass(frozen=True, slots=True)
class LabelRequest:
    """LABEL_REQUEST without label range (RFC 3209 §4.2.1): L3PID."""

    class_num: ClassVar[int] = ClassNum.LABEL_REQUEST
    c_type: ClassVar[int] = 1
    l3pid: int = 0x0800

    def body(self) -> bytes:
        return u16(0) + u16(self.l3pid)

    @classmethod
    def decode_body(cls, r: Reader) -> LabelRequest:
        r.u16("reserved")
        return cls(r.u16("l3pid"))


# --- EXPLICIT_ROUTE / RECORD_ROUTE (classes 20, 21) --------------------------------------


@_reg(20, 1)
@dataclass(frozen=True, slots=True)
class ExplicitRoute:
    """EXPLICIT_ROUTE (RFC 3209 §4.3), subobjects from :mod:`gmpls.ero` (the QE
    subobject included). A malformed one is (24, 1) "Bad EXPLICIT_ROUTE object"."""

    class_num: ClassVar[int] = ClassNum.EXPLICIT_ROUTE
    c_type: ClassVar[int] = 1
    subobjects: tuple[ero.Subobject, ...]

    def body(self) -> bytes:
        return ero.encode_subobjects(self.subobjects)

    @classmethod
    def decode_body(cls, r: Reader) -> ExplicitRoute:
        code = (ErrorCode.ROUTING_PROBLEM, RoutingProblem.BAD_EXPLICIT_ROUTE)
        return cls(tuple(ero.decode_subobjects(r.rest(), f"{r.where}.subobjects", code)))


@_reg(21, 1)
@dataclass(frozen=True, slots=True)
class RecordRoute:
    """RECORD_ROUTE (RFC 3209 §4.4, RFC 3473 §5.2 label subobjects)."""

    class_num: ClassVar[int] = ClassNum.RECORD_ROUTE
    c_type: ClassVar[int] = 1
    subobjects: tuple[ero.Subobject, ...]

    def body(self) -> bytes:
        return ero.encode_subobjects(self.subobjects)

    @classmethod
    def decode_body(cls, r: Reader) -> RecordRoute:
        return cls(tuple(ero.decode_subobjects(r.rest(), f"{r.where}.subobjects")))


# --- HELLO (class 22), MESSAGE_ID (23, 24) -----------------------------------------------


@dataclass(frozen=True, slots=True)
class _Hello:
    src_instance: int
    dst_instance: int

    def body(self) -> bytes:
        return u32(self.src_instance) + u32(self.dst_instance)


@_reg(22, 1)
@dataclass(frozen=True, slots=True)
class HelloRequest(_Hello):
    """HELLO REQUEST (RFC 3209 §5.2): source and destination instances."""

    class_num: ClassVar[int] = ClassNum.HELLO
    c_type: ClassVar[int] = 1

    @classmethod
    def decode_body(cls, r: Reader) -> HelloRequest:
        return cls(r.u32("src_instance"), r.u32("dst_instance"))


@_reg(22, 2)
@dataclass(frozen=True, slots=True)
class HelloAck(_Hello):
    """HELLO ACK (RFC 3209 §5.3)."""

    class_num: ClassVar[int] = ClassNum.HELLO
    c_type: ClassVar[int] = 2

    @classmethod
    def decode_body(cls, r: Reader) -> HelloAck:
        return cls(r.u32("src_instance"), r.u32("dst_instance"))


@dataclass(frozen=True, slots=True)
class _MsgId:
    message_id: int
    epoch: int = 0
    flags: int = 0

    def body(self) -> bytes:
        return u8(self.flags) + u24(self.epoch) + u32(self.message_id)


@_reg(23, 1)
@dataclass(frozen=True, slots=True)
class MessageId(_MsgId):
    """MESSAGE_ID (RFC 2961 §4.1): flags (0x01 ACK_Desired), epoch, message ID."""

    class_num: ClassVar[int] = ClassNum.MESSAGE_ID
    c_type: ClassVar[int] = 1

    @classmethod
    def decode_body(cls, r: Reader) -> MessageId:
        flags = r.u8("flags")
        epoch = r.u24("epoch")
        return cls(r.u32("message_id"), epoch, flags)


@_reg(24, 1)
@dataclass(frozen=True, slots=True)
class MessageIdAck(_MsgId):
    """MESSAGE_ID_ACK (RFC 2961 §4.2)."""

    class_num: ClassVar[int] = ClassNum.MESSAGE_ID_ACK
    c_type: ClassVar[int] = 1

    @classmethod
    def decode_body(cls, r: Reader) -> MessageIdAck:
        flags = r.u8("flags")
        epoch = r.u24("epoch")
        return cls(r.u32("message_id"), epoch, flags)


@_reg(24, 2)
@dataclass(frozen=True, slots=True)
class MessageIdNack(_MsgId):
    """MESSAGE_ID_NACK (RFC 2961 §4.3)."""

    class_num: ClassVar[int] = ClassNum.MESSAGE_ID_ACK
    c_type: ClassVar[int] = 2

    @classmethod
    def decode_body(cls, r: Reader) -> MessageIdNack:
        flags = r.u8("flags")
        epoch = r.u24("epoch")
        return cls(r.u32("message_id"), epoch, flags)


# --- NOTIFY_REQUEST (195), ADMIN_STATUS (196), SESSION_ATTRIBUTE (207) -------------------


@_reg(195, 1)
@dataclass(frozen=True, slots=True)
class NotifyRequest:
    """NOTIFY_REQUEST IPv4 (RFC 3473 §4.2.1): where to send Notify messages."""

    class_num: ClassVar[int] = ClassNum.NOTIFY_REQUEST
    c_type: ClassVar[int] = 1
    notify_node: IPv4

    def body(self) -> bytes:
        return self.notify_node.packed

    @classmethod
    def decode_body(cls, r: Reader) -> NotifyRequest:
        return cls(r.ipv4("notify_node"))


@_reg(196, 1)
@dataclass(frozen=True, slots=True)
class AdminStatus:
    """ADMIN_STATUS (RFC 3473 §7.1): R (reflect, 0x80000000), T testing (4),
    A administratively down (2), D deletion in progress (1)."""

    class_num: ClassVar[int] = ClassNum.ADMIN_STATUS
    c_type: ClassVar[int] = 1
    bits: int = 0

    REFLECT: ClassVar[int] = 0x80000000
    TESTING: ClassVar[int] = 0x4
    ADMIN_DOWN: ClassVar[int] = 0x2
    DELETION: ClassVar[int] = 0x1

    def body(self) -> bytes:
        return u32(self.bits)

    @classmethod
    def decode_body(cls, r: Reader) -> AdminStatus:
        return cls(r.u32("bits"))


def _name_body(name: str) -> bytes:
    raw = name.encode("latin-1")
    if len(raw) > 255:
        raise EncodeError("rsvp.SESSION_ATTRIBUTE.name", "longer than 255 bytes")
    return u8(len(raw)) + raw + bytes(pad4(len(raw)))


def _name_decode(r: Reader) -> str:
    """Name length, name, then NUL padding to the next 4-byte boundary (the fields before
    the name are a multiple of four bytes minus one in both C-Types)."""
    n = r.u8("name_length")
    raw = r.bytes(n, "name")
    padding = r.rest()
    if len(padding) != pad4(n):
        raise r.fail("name", f"{len(padding)} padding bytes after a {n}-byte name")
    return raw.decode("latin-1")


@_reg(207, 7)
@dataclass(frozen=True, slots=True)
class SessionAttribute:
    """SESSION_ATTRIBUTE without resource affinities (RFC 3209 §4.7.1)."""

    class_num: ClassVar[int] = ClassNum.SESSION_ATTRIBUTE
    c_type: ClassVar[int] = 7
    name: str
    setup_priority: int = 7
    hold_priority: int = 7
    flags: int = 0

    def body(self) -> bytes:
        return (
            u8(self.setup_priority)
            + u8(self.hold_priority)
            + u8(self.flags)
            + _name_body(self.name)
        )

    @classmethod
    def decode_body(cls, r: Reader) -> SessionAttribute:
        sp = r.u8("setup_priority")
        hp = r.u8("hold_priority")
        fl = r.u8("flags")
        return cls(_name_decode(r), sp, hp, fl)


@_reg(207, 1)
@dataclass(frozen=True, slots=True)
class SessionAttributeRa:
    """SESSION_ATTRIBUTE with resource affinities (RFC 3209 §4.7.2)."""

    class_num: ClassVar[int] = ClassNum.SESSION_ATTRIBUTE
    c_type: ClassVar[int] = 1
    name: str
    exclude_any: int = 0
    include_any: int = 0
    include_all: int = 0
    setup_priority: int = 7
    hold_priority: int = 7
    flags: int = 0

    def body(self) -> bytes:
        return (
            u32(self.exclude_any)
            + u32(self.include_any)
            + u32(self.include_all)
            + u8(self.setup_priority)
            + u8(self.hold_priority)
            + u8(self.flags)
            + _name_body(self.name)
        )

    @classmethod
    def decode_body(cls, r: Reader) -> SessionAttributeRa:
        ex, ia, il = r.u32("exclude_any"), r.u32("include_any"), r.u32("include_all")
        sp = r.u8("setup_priority")
        hp = r.u8("hold_priority")
        fl = r.u8("flags")
        return cls(_name_decode(r), ex, ia, il, sp, hp, fl)


# --- generic objects ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpaqueObject:
    """An object of a class carried without interpretation (INTEGRITY, SCOPE, ADSPEC,
    POLICY_DATA): any C-Type, bytes kept."""

    class_num: int
    c_type: int
    data: bytes = field(default=b"")

    def body(self) -> bytes:
        return self.data


@dataclass(frozen=True, slots=True)
class UnknownObject:
    """An object of unknown class ``11bbbbbb``: ignored, forwarded unchanged (RFC 2205
    §3.10)."""

    class_num: int
    c_type: int
    data: bytes = field(default=b"")

    def body(self) -> bytes:
        return self.data


_CLASS_NAMES = {c.value: c.name for c in ClassNum}


def decode_object(r: Reader, i: int) -> RsvpObject | None:
    """One object from ``r``; ``None`` for an unknown class ``10bbbbbb`` (dropped)."""
    length = r.u16(f"object[{i}].length")
    class_num = r.u8(f"object[{i}].class_num")
    c_type = r.u8(f"object[{i}].c_type")
    if length < 4 or length % 4:
        raise r.fail(f"object[{i}].length", f"{length} is not a multiple of 4 of at least 4")
    name = _CLASS_NAMES.get(class_num) or str(class_num)
    body = r.sub(length - 4, name)
    cls = _REGISTRY.get((class_num, c_type))
    if cls is not None:
        obj: RsvpObject = cls.decode_body(body)  # type: ignore[attr-defined]
        body.expect_end("length")
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
