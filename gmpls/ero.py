"""Explicit and record route subobjects, shared by PCEP (ERO/RRO/IRO objects) and RSVP-TE
(EXPLICIT_ROUTE/RECORD_ROUTE objects).

Formats (all subobjects: ``L|type(7) length`` then body; length counts the 2-byte header,
is at least 4 and a multiple of 4 — RFC 3209 §4.3.3):

======  ==============================  =========================================
type    subobject                       body
======  ==============================  =========================================
1       IPv4 prefix (RFC 3209 §4.3.3.3)  address(4) prefix-length(1) flags(1)
2       IPv6 prefix (RFC 3209 §4.3.3.4)  address(16) prefix-length(1) flags(1)
3       Label (RFC 3473 §5.1.1)          U|reserved(1) C-Type(1) label(4)
4       Unnumbered interface (RFC 3477)  flags(1) reserved(1) router-id(4) if-id(4)
32      AS number (RFC 3209 §4.3.3.5)    AS(2)
103     QE (docs/design.md)              reserved(2) session-id(64) layer(1) alg(1)
                                          key-length(2) refresh-type(1) reserved(1)
                                          refresh-value(2)
======  ==============================  =========================================

In an ERO the top bit of the first byte is the L (loose) bit; in an RRO it is zero, and the
byte that an ERO reserves (IPv4/IPv6 prefix last byte, unnumbered and label byte 2) holds
the RRO flags. One class per type serves both, keeping that byte as ``flags``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from gmpls import qe
from gmpls.errors import DecodeError, EncodeError
from gmpls.layout import Tail, Wired, layout
from gmpls.registry import Registry
from gmpls.wire import Reader, u8

_REGISTRY: Registry[type] = Registry("ERO subobject", attrs=("TYPE",))


def _header(loose: bool, type_: int, body: bytes) -> bytes:
    length = 2 + len(body)
    if length % 4 or length > 255:
        raise EncodeError(
            f"ero.subobject[{type_}].length", f"{length} is not a multiple of 4 <= 252"
        )
    return u8((0x80 if loose else 0) | type_) + u8(length) + body


class Subobject(Wired):
    """Base of every subobject class: the L bit and the type in front of the body (the
    registry sets ``TYPE``)."""

    __slots__ = ()
    TYPE: ClassVar[int]
    loose: bool

    def encode(self) -> bytes:
        return _header(self.loose, self.TYPE, self.encode_body())


class _Prefix(Subobject):
    __slots__ = ()
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    prefix_len: int

    @classmethod
    def decode_body(cls, r: Reader, **extra: Any) -> Self:
        p = super().decode_body(r, **extra)
        if p.prefix_len > p.address.max_prefixlen:
            raise r.fail("prefix_length", f"{p.prefix_len} > {p.address.max_prefixlen}")
        return p


@_REGISTRY.register(1)
@layout("address:ipv4 prefix_len:u8 flags:u8")
class Ipv4Prefix(_Prefix):
    address: ipaddress.IPv4Address
    prefix_len: int = 32
    loose: bool = False
    flags: int = 0


@_REGISTRY.register(2)
@layout("address:ipv6 prefix_len:u8 flags:u8")
class Ipv6Prefix(_Prefix):
    address: ipaddress.IPv6Address
    prefix_len: int = 128
    loose: bool = False
    flags: int = 0


@_REGISTRY.register(3)
@layout("flags:u8 ctype:u8 label:u32")
class Label(Subobject):
    """A label subobject; ``ctype`` 2 is the generalized label of RFC 3473.

    In an ERO ``flags`` & 0x80 is the U (upstream) bit; in an RRO ``flags`` are the
    RRO label flags (0x01 global label).
    """

    label: int
    ctype: int = 2
    loose: bool = False
    flags: int = 0

    @property
    def upstream(self) -> bool:
        return bool(self.flags & 0x80)


@_REGISTRY.register(4)
@layout("flags:u8 reserved:x1 router_id:ipv4 interface_id:u32")
class Unnumbered(Subobject):
    """An unnumbered interface, router-id:interface-id (RFC 3477 §4)."""

    router_id: ipaddress.IPv4Address
    interface_id: int
    loose: bool = False
    flags: int = 0

    def __str__(self) -> str:
        return f"{self.router_id}:{self.interface_id}"


@_REGISTRY.register(32)
@layout("asn:u16")
class AsNumber(Subobject):
    asn: int
    loose: bool = False


@layout(
    f"reserved:u16 session_id:b{qe.SESSION_ID_LEN} enc_layer:u8 algorithm:u8 key_length:u16"
    " refresh_type:u8 reserved2:x1 refresh_value:u16"
)
class QeSubobject(Subobject):
    """The QE subobject of docs/design.md#the-qe-ero-subobject; its type code is
    ``qe.CODEPOINTS.ero_subobject``."""

    LENGTH: ClassVar[int] = 76
    session_id: bytes = qe.ZERO_SESSION_ID
    enc_layer: int = qe.EncLayer.ETHERNET
    algorithm: int = qe.Algorithm.AES_256_GCM
    key_length: int = 32
    refresh_type: int = qe.RefreshType.TIME_MS
    refresh_value: int = 1000
    loose: bool = False
    reserved: int = 0

    @property
    def has_session(self) -> bool:
        return self.session_id != qe.ZERO_SESSION_ID

    @classmethod
    def from_params(cls, p: qe.QeParams, session_id: bytes = qe.ZERO_SESSION_ID) -> QeSubobject:
        return cls(
            session_id, p.enc_layer, p.algorithm, p.key_length, p.refresh_type, p.refresh_value
        )

    def params(self) -> qe.QeParams:
        return qe.QeParams(
            self.key_length, self.enc_layer, self.algorithm, self.refresh_value, self.refresh_type
        )

    def encode(self) -> bytes:
        return _header(self.loose, qe.CODEPOINTS.ero_subobject, self.encode_body())

    @classmethod
    def decode_body(cls, r: Reader, **extra: Any) -> Self:
        if r.remaining != cls.LENGTH - 2:
            raise r.fail("length", f"QE subobject must be {cls.LENGTH} bytes, is {r.remaining + 2}")
        qe_subobject: Self = cls.WIRE.decode(cls, r, **extra)
        return qe_subobject


@dataclass(frozen=True, slots=True)
class UnknownSubobject(Subobject):
    """A subobject of a type this codec does not know, kept to be forwarded unchanged."""

    type: int
    body: bytes = field(default=b"")
    loose: bool = False

    def encode(self) -> bytes:
        return _header(self.loose, self.type, self.body)


def decode_subobjects(
    data: bytes, where: str, code: tuple[int, int] | None = None
) -> list[Subobject]:
    """Decode a run of subobjects that fills ``data`` exactly."""
    r = Reader(data, where, code=code)
    out: list[Subobject] = []
    i = 0
    while not r.at_end():
        first = r.u8(f"[{i}].type")
        length = r.u8(f"[{i}].length")
        if length < 4 or length % 4:
            raise r.fail(f"[{i}].length", f"{length} is not a multiple of 4 of at least 4")
        body = r.sub(length - 2, f"[{i}]")
        loose, type_ = bool(first & 0x80), first & 0x7F
        cls = QeSubobject if type_ == qe.CODEPOINTS.ero_subobject else _REGISTRY.get(type_)
        if cls is None:
            out.append(UnknownSubobject(type_, body.rest(), loose))
        else:
            out.append(cls.decode_body(body, loose=loose))  # type: ignore[attr-defined]
            body.expect_end("length")
        i += 1
    return out


def encode_subobjects(subobjects: list[Subobject] | tuple[Subobject, ...]) -> bytes:
    return b"".join(s.encode() for s in subobjects)


def subobjects(code: tuple[int, int] | None = None) -> Tail:
    """Subobjects to the end of a body, as the tail of a layout (the route objects of PCEP
    and RSVP-TE); a malformed one raises with ``code``, by default the reader's."""

    def decode(r: Reader, name: str) -> tuple[Subobject, ...]:
        where, why = f"{r.where}.{name}", code or r.code
        return tuple(decode_subobjects(r.rest(), where, why))

    return Tail(encode_subobjects, decode)


# RFC 6205 lambda labels -----------------------------------------------------------------

#: RFC 6205 §3.2 grid and channel spacing code points
GRID_DWDM = 1
CS_DWDM_100GHZ = 1


def lambda_label(n: int, grid: int = GRID_DWDM, cs: int = CS_DWDM_100GHZ, ident: int = 0) -> int:
    """The 32-bit RFC 6205 label: Grid(3) C.S.(4) Identifier(9) n(16, signed)."""
    if not -(1 << 15) <= n < 1 << 15:
        raise EncodeError("lambda_label.n", f"{n} does not fit 16 signed bits")
    return (grid << 29) | (cs << 25) | ((ident & 0x1FF) << 16) | (n & 0xFFFF)


def hop_text(s: Subobject) -> str:
    """One ERO/RRO hop as the CLI shows it: ``10.1.1.2``, ``10.1.1.2/24``, ``10.1.1.2:7``
    (unnumbered), ``lambda 3`` (a generalized label; ``upstream lambda 3`` with the U bit),
    else the subobject's type name."""
    if isinstance(s, _Prefix):
        full = s.prefix_len == s.address.max_prefixlen
        return str(s.address) if full else f"{s.address}/{s.prefix_len}"
    if isinstance(s, Unnumbered):
        return str(s)
    if isinstance(s, Label):
        word = "upstream lambda" if s.upstream else "lambda"
        return f"{word} {lambda_channel(s.label)}" if s.ctype == 2 else f"label {s.label}"
    return type(s).__name__


def lambda_channel(label: int) -> int:
    """The channel index n of an RFC 6205 label."""
    n = label & 0xFFFF
    return n - 0x10000 if n & 0x8000 else n


def lambda_frequency_thz(label: int) -> float:
    """193.1 THz + n x channel spacing (RFC 6205 §3.2; DWDM spacings 100/50/25/12.5 GHz)."""
    cs = (label >> 25) & 0xF
    spacing = {1: 0.1, 2: 0.05, 3: 0.025, 4: 0.0125}.get(cs)
    if spacing is None:
        raise DecodeError("lambda_label.cs", f"unknown DWDM channel spacing {cs}")
    return round(193.1 + lambda_channel(label) * spacing, 4)
