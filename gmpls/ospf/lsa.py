"""OSPFv2 LSAs: the 20-byte header with its Fletcher checksum, and the LSA bodies.

RFC 2328 §A.4 (header, Router, Network, Summary, AS-external LSAs) and RFC 5250 (opaque
LSAs, LS types 9/10/11, whose link state ID is an 8-bit opaque type and a 24-bit opaque
ID). Bodies are table-driven: :data:`BODIES` maps the LS type to a body class (its
``encode_body``/``decode_body``, most of them a :func:`~gmpls.layout.layout`),
:data:`OPAQUE_BODIES` maps the opaque type (TE = 1, Router Information = 4, registered by
:mod:`gmpls.ospf.te` and :mod:`gmpls.ospf.ri`) to one. An unknown LS type or opaque type
decodes to :class:`UnknownBody`, which keeps the raw bytes.

Flooding needs only the header and the checksum (RFC 2328 §13: checksum, LS type, age),
so a body is never a reason to refuse an LSA: an LSA from the wire is decoded lazily (its
body when first read, :attr:`LSA.body`), and a body its decoder rejects (say a TE Link
sub-TLV of the wrong length) decodes to :class:`MalformedBody`, which keeps the raw bytes
and the reason. Such an LSA is installed, acknowledged and flooded like any other; the
users of bodies (SPF, the PCE's TED) look for the body classes they know and so skip it.

An :class:`LSA` decoded from the wire remembers its exact bytes, so flooding forwards
exactly what the originator sent (only the age changes), whatever canonical form our own
encoders would produce. The Fletcher checksum is checked by :meth:`LSA.decode` (by
default) and by the router per LSA (:attr:`LSA.checksum_ok`, §13 step 1).
"""

from __future__ import annotations

import struct
import weakref
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from typing import Any, ClassVar, Protocol, Self

from gmpls.checksum import fletcher_checksum, fletcher_ok
from gmpls.errors import DecodeError, EncodeError
from gmpls.layout import REST, Records, Repeat, Wired, layout
from gmpls.ospf.constants import LSA_HEADER_LEN, MAX_AGE, MAX_AGE_DIFF, OPAQUE_TYPES, LsType
from gmpls.registry import Registry
from gmpls.wire import Reader


def ip(v: IPv4Address | str | int) -> IPv4Address:
    """Coerce a value to :class:`IPv4Address` (helper for builders and tests)."""
    return v if isinstance(v, IPv4Address) else IPv4Address(v)


@dataclass(frozen=True, slots=True, order=True)
class LSAKey:
    """What identifies an LSA instance's LSA (RFC 2328 §12.1): type, ID, advertising router."""

    ls_type: int
    ls_id: IPv4Address
    adv_router: IPv4Address
    #: the hash, computed once: LSAKey is the key of the LSDB and of every per-neighbour
    #: list, looked up a dozen times for each LSA received
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # the addresses as integers: IPv4Address.__hash__ formats a hex string each time
        # (equal keys still hash equal)
        h = hash((self.ls_type, int(self.ls_id), int(self.adv_router)))
        object.__setattr__(self, "_hash", h)

    def __str__(self) -> str:
        return f"{self.ls_type}/{self.ls_id}/{self.adv_router}"

    def __hash__(self) -> int:
        return self._hash


@layout("age:u16 options:u8 ls_type:u8 ls_id:ipv4 adv_router:ipv4 seq:i32 checksum:u16 length:u16")
class LSAHeader(Wired):
    """RFC 2328 §A.4.1. ``seq`` is the signed 32-bit LS sequence number."""

    age: int
    options: int
    ls_type: int
    ls_id: IPv4Address
    adv_router: IPv4Address
    seq: int
    checksum: int
    length: int

    SIZE: ClassVar[int] = LSA_HEADER_LEN

    @property
    def key(self) -> LSAKey:
        return LSAKey(self.ls_type, self.ls_id, self.adv_router)

    @property
    def opaque_type(self) -> int:
        return int(self.ls_id) >> 24

    @property
    def opaque_id(self) -> int:
        return int(self.ls_id) & 0xFFFFFF

    def encode(self) -> bytes:
        return self.WIRE.encode(self)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls.decode_body(r)


class LSABody(Protocol):
    def encode_body(self) -> bytes: ...


BODIES: Registry[Any] = Registry("ospf.lsa.body")
OPAQUE_BODIES: Registry[Any] = Registry("ospf.lsa.opaque")


@layout(raw=REST)
class UnknownBody(Wired):
    """A body of an LS type (or opaque type) we do not interpret: kept as raw bytes."""

    raw: bytes


@dataclass(frozen=True, slots=True)
class MalformedBody:
    """A body its decoder rejected: the raw bytes (flooded unchanged) and why (never used)."""

    raw: bytes
    reason: str = field(default="", compare=False)

    def encode_body(self) -> bytes:
        return self.raw


@dataclass(frozen=True, slots=True)
class TosMetric:
    tos: int
    metric: int


@dataclass(frozen=True, slots=True)
class RouterLink:
    """One link of a Router-LSA (RFC 2328 §A.4.2)."""

    link_id: IPv4Address
    link_data: IPv4Address
    type: int
    metric: int
    tos: tuple[TosMetric, ...] = ()

    def encode(self) -> bytes:
        out = [
            self.link_id.packed,
            self.link_data.packed,
            struct.pack("!BBH", self.type, len(self.tos), self.metric),
        ]
        out += [struct.pack("!BBH", t.tos, 0, t.metric) for t in self.tos]
        return b"".join(out)


@BODIES.register(LsType.ROUTER)
@dataclass(frozen=True, slots=True)
class RouterLSA:
    """RFC 2328 §A.4.2: flags (V, E, B) and the router's links."""

    flags: int
    links: tuple[RouterLink, ...]

    def encode_body(self) -> bytes:
        head = struct.pack("!BBH", self.flags, 0, len(self.links))
        return head + b"".join(link.encode() for link in self.links)

    @classmethod
    def decode_body(cls, r: Reader) -> RouterLSA:
        flags = r.u8("flags")
        r.u8("reserved")
        n = r.u16("links")
        links = []
        for _ in range(n):
            link_id = r.ipv4("link_id")
            link_data = r.ipv4("link_data")
            ltype = r.u8("link_type")
            ntos = r.u8("tos_count")
            metric = r.u16("metric")
            tos = []
            for _ in range(ntos):
                t = r.u8("tos")
                r.u8("tos_reserved")
                tos.append(TosMetric(t, r.u16("tos_metric")))
            links.append(RouterLink(link_id, link_data, ltype, metric, tuple(tos)))
        r.expect_end("links")
        return cls(flags, tuple(links))


@BODIES.register(LsType.NETWORK)
@layout("mask:ipv4", routers=Repeat("ipv4"))
class NetworkLSA(Wired):
    """RFC 2328 §A.4.3: the network mask and the routers attached to the network."""

    mask: IPv4Address
    routers: tuple[IPv4Address, ...]


@BODIES.register(LsType.SUMMARY_NETWORK, LsType.SUMMARY_ASBR)
@layout("mask:ipv4", metrics=Records(TosMetric, "tos:u8 metric:u24"))
class SummaryLSA(Wired):
    """RFC 2328 §A.4.4: mask and 24-bit metrics per TOS (TOS 0 first)."""

    mask: IPv4Address
    metrics: tuple[TosMetric, ...]


@dataclass(frozen=True, slots=True)
class ExternalMetric:
    """One TOS entry of an AS-external-LSA (RFC 2328 §A.4.5); ``e_tos`` holds E and TOS."""

    e_tos: int
    metric: int
    forwarding: IPv4Address
    tag: int


@BODIES.register(LsType.AS_EXTERNAL, LsType.NSSA)
@layout(
    "mask:ipv4",
    metrics=Records(ExternalMetric, "e_tos:u8 metric:u24 forwarding:ipv4 tag:u32"),
)
class ASExternalLSA(Wired):
    """RFC 2328 §A.4.5 (and NSSA type 7, RFC 3101, same body)."""

    mask: IPv4Address
    metrics: tuple[ExternalMetric, ...]


def decode_body(ls_type: int, ls_id: IPv4Address, r: Reader) -> Any:
    """Decode an LSA body by LS type (and opaque type for RFC 5250 LSAs); raise
    :class:`DecodeError` if it is malformed."""
    cls = OPAQUE_BODIES.get(int(ls_id) >> 24) if ls_type in OPAQUE_TYPES else BODIES.get(ls_type)
    if cls is None:
        cls = UnknownBody
    body = cls.decode_body(r)
    r.expect_end("body")
    return body


def decode_body_or_keep(ls_type: int, ls_id: IPv4Address, raw: bytes, where: str) -> Any:
    """The decoded body, or a :class:`MalformedBody` keeping ``raw`` if it is malformed."""
    try:
        return decode_body(ls_type, ls_id, Reader(raw, where))
    except DecodeError as e:
        return MalformedBody(raw, str(e))


#: the body of an LSA from the wire that nobody has asked for yet
_UNDECODED: Any = object()


@dataclass(frozen=True, slots=True, init=False, eq=False, repr=False, weakref_slot=True)
class LSA:
    """An LSA: header and body, ``LSA(header, body, wire)``.

    ``wire`` holds the exact bytes when the LSA came from the wire (or was built by
    :meth:`build`); it is not part of equality. :meth:`encode` sends those bytes with the
    current age, so flooding never changes an LSA's content or checksum.

    An LSA decoded from the wire (:meth:`decode_from`) is made from its header and bytes
    alone: :attr:`body` is decoded the first time someone reads it (SPF, the PCE's TED, a
    CLI view) and kept (``decoded``). Flooding never reads it.
    """

    header: LSAHeader
    decoded: Any
    wire: bytes
    #: the header's key, made once (flooding looks an LSA up by it a dozen times)
    key: LSAKey = field(init=False)
    #: ``wire`` is this header (bar the age) and body: True for an LSA decoded, built or
    #: re-aged here; None until checked for one made from parts (:meth:`encode_aged`)
    exact: bool | None = field(init=False)
    #: the Fletcher checksum of ``wire`` is right: None until checked (:attr:`checksum_ok`)
    fletcher: bool | None = field(init=False)

    def __init__(
        self, header: LSAHeader, body: Any = _UNDECODED, wire: bytes = b"", decoded: Any = None
    ) -> None:
        body = decoded if body is _UNDECODED and decoded is not None else body
        if body is _UNDECODED and len(wire) != header.length:
            raise ValueError("an LSA without a body needs its wire bytes")
        object.__setattr__(self, "header", header)
        object.__setattr__(self, "decoded", body)
        object.__setattr__(self, "wire", wire)
        object.__setattr__(self, "key", header.key)
        object.__setattr__(self, "exact", None)
        object.__setattr__(self, "fletcher", None)

    @classmethod
    def _make(cls, header: LSAHeader, decoded: Any, wire: bytes, key: LSAKey) -> LSA:
        """An LSA whose ``wire`` is known to be ``header`` and body (age aside)."""
        lsa = object.__new__(cls)
        set_ = object.__setattr__
        set_(lsa, "header", header)
        set_(lsa, "decoded", decoded)
        set_(lsa, "wire", wire)
        set_(lsa, "key", key)
        set_(lsa, "exact", True)
        set_(lsa, "fletcher", None)
        return lsa

    @property
    def body(self) -> Any:
        """The decoded body (a :class:`MalformedBody` when its decoder rejects it)."""
        body = self.decoded
        if body is _UNDECODED:
            h = self.header
            where = f"ospf.lsa[{h.key}]"
            body = decode_body_or_keep(h.ls_type, h.ls_id, self.wire[LSA_HEADER_LEN:], where)
            object.__setattr__(self, "decoded", body)
        return body

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LSA):
            return NotImplemented
        return self.header == other.header and self.body == other.body

    def __hash__(self) -> int:
        return hash((self.header, self.body))

    def __repr__(self) -> str:
        return f"LSA(header={self.header!r}, body={self.body!r})"

    @property
    def checksum_ok(self) -> bool:
        """The Fletcher checksum of the bytes received is right (RFC 2328 §13 step 1); an
        LSA we built ourselves has no received bytes and is right by construction."""
        ok = self.fletcher
        if ok is None:  # checked once: an LSA decoded again is the same object (_SEEN)
            ok = not self.wire or fletcher_ok(self.wire[2:])
            object.__setattr__(self, "fletcher", ok)
        return ok

    @property
    def usable(self) -> bool:
        """The body decoded (a :class:`MalformedBody` is flooded but not used)."""
        return not isinstance(self.body, MalformedBody)

    @classmethod
    def build(
        cls,
        ls_type: int,
        ls_id: IPv4Address | str | int,
        adv_router: IPv4Address | str | int,
        seq: int,
        body: Any,
        *,
        options: int = 0x02,
        age: int = 0,
    ) -> LSA:
        """Make an LSA with its length and Fletcher checksum computed (RFC 2328 §12.1.7)."""
        payload = body.encode_body()
        length = LSA_HEADER_LEN + len(payload)
        if length > 0xFFFF:
            raise EncodeError("ospf.lsa.length", f"{length} does not fit 16 bits")
        h = LSAHeader(age, options, ls_type, ip(ls_id), ip(adv_router), seq, 0, length)
        raw = h.encode() + payload
        cks = fletcher_checksum(raw[2:], 14)
        h = replace(h, checksum=cks)
        return cls._make(h, body, h.encode() + payload, h.key)

    def with_age(self, age: int) -> LSA:
        age = min(age, MAX_AGE)
        h = self.header
        aged = LSAHeader(
            age, h.options, h.ls_type, h.ls_id, h.adv_router, h.seq, h.checksum, h.length
        )
        if self.exact:
            return LSA._make(aged, self.decoded, self.wire, self.key)
        return replace(self, header=aged)

    def _wire_exact(self) -> bool:
        """``wire`` holds this header (the age aside) and a body of the right length."""
        exact = self.exact
        if exact is None:
            w = self.wire
            exact = bool(w) and len(w) == self.header.length
            exact = exact and self.header.encode()[2:] == w[2:LSA_HEADER_LEN]
            object.__setattr__(self, "exact", exact)
        return exact

    def encode_aged(self, age: int) -> bytes:
        """The LSA's bytes with ``age`` (capped at MaxAge) in its age field: the bytes
        received or built, the 2-byte age patched (the checksum does not cover it)."""
        if self._wire_exact():
            return min(age, MAX_AGE).to_bytes(2, "big") + self.wire[2:]
        return self.with_age(age).encode()

    def header_bytes(self) -> bytes:
        """The 20-byte header as it is (an LS Ack or DD carries it)."""
        if self._wire_exact():
            return self.header.age.to_bytes(2, "big") + self.wire[2:LSA_HEADER_LEN]
        return self.header.encode()

    def encode(self) -> bytes:
        if self._wire_exact():
            return self.header.age.to_bytes(2, "big") + self.wire[2:]
        return self.header.encode() + self.body.encode_body()

    @classmethod
    def decode(cls, data: bytes, *, verify: bool = True) -> LSA:
        """Decode one LSA occupying all of ``data``; checks length and (by default) checksum."""
        r = Reader(data, "ospf.lsa")
        return cls.decode_from(r, verify=verify)

    @classmethod
    def decode_from(cls, r: Reader, *, verify: bool = True) -> LSA:
        """Decode one LSA: the header and length must hold (they frame the next LSA); the
        checksum is checked when ``verify``. The body is decoded when first read; a
        malformed one is kept as :class:`MalformedBody`, never an error.

        The same bytes decode to the same object while it is held (:data:`_SEEN`), so
        an LSA flooded to many routers of one process is decoded, its checksum checked
        and its body decoded once for all of them."""
        start = r.pos
        data = r.data
        if r.end - start >= LSA_HEADER_LEN:
            end = start + ((data[start + 18] << 8) | data[start + 19])
            if start + LSA_HEADER_LEN <= end <= r.end:
                wire = bytes(data[start:end])
                ref = _SEEN.get(wire)
                lsa = ref() if ref is not None else None
                if lsa is not None:
                    if verify and not lsa.checksum_ok:
                        raise DecodeError(
                            f"{r.where}.checksum", f"bad Fletcher checksum in LSA {lsa.key}"
                        )
                    r.pos = end
                    return lsa
        h = LSAHeader.decode(r)
        if h.length < LSA_HEADER_LEN:
            raise r.fail("length", f"{h.length} is shorter than the header")
        end = start + h.length
        if end > r.end:  # the error names the LSA: only then is its key formatted
            r.bytes(h.length - LSA_HEADER_LEN, f"lsa[{h.key}]")
        r.pos = end
        wire = bytes(r.data[start:end])
        lsa = cls._make(h, _UNDECODED, wire, h.key)
        if verify and not lsa.checksum_ok:
            raise DecodeError(f"{r.where}.checksum", f"bad Fletcher checksum in LSA {h.key}")
        _remember(wire, lsa)
        return lsa


#: the LSAs decoded and still held somewhere (an LSDB, a retransmission list), by their
#: bytes (age included: re-aged copies are other entries). A pack of routers in one
#: process receives each instance from every neighbour of every router: one decode
#: serves them all (LSAs are immutable; a body decoded by one router's SPF is decoded for
#: all). Weak references: an LSA nobody holds is not kept alive by the cache, and the
#: entries of those gone are dropped when the dict has doubled since the last sweep.
_SEEN: dict[bytes, weakref.ref[LSA]] = {}
_seen_sweep_at = 4096


def _remember(wire: bytes, lsa: LSA) -> None:
    global _seen_sweep_at
    if len(_SEEN) >= _seen_sweep_at:
        for k in [k for k, ref in _SEEN.items() if ref() is None]:
            del _SEEN[k]
        _seen_sweep_at = max(4096, 2 * len(_SEEN))
    _SEEN[wire] = weakref.ref(lsa)


def compare_instances(a: LSAHeader, b: LSAHeader) -> int:
    """Which instance is newer (RFC 2328 §13.1): >0 when ``a`` is, <0 when ``b`` is, 0 same.

    Sequence number first, then checksum, then MaxAge, then an age difference of more than
    MaxAgeDiff (the younger one is newer).
    """
    return compare_fields(a.seq, a.checksum, a.age, b.seq, b.checksum, b.age)


def compare_fields(a_seq: int, a_cks: int, a_age: int, b_seq: int, b_cks: int, b_age: int) -> int:
    """:func:`compare_instances` of two instances given by sequence, checksum and age (a
    database copy's current age is computed, not a header: no header is made for it)."""
    if a_seq != b_seq:
        return 1 if a_seq > b_seq else -1
    if a_cks != b_cks:
        return 1 if a_cks > b_cks else -1
    a_max, b_max = a_age >= MAX_AGE, b_age >= MAX_AGE
    if a_max != b_max:
        return 1 if a_max else -1
    if abs(a_age - b_age) > MAX_AGE_DIFF:
        return 1 if a_age < b_age else -1
    return 0
