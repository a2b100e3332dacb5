"""Traffic Engineering opaque LSA (opaque type 1): RFC 3630 with the GMPLS sub-TLVs of
RFC 4203 and a wavelength-availability sub-TLV (docs/ospf-te.md).

Top-level TLVs: Router Address (1), Link (2), and our QKD link TLV
(:mod:`gmpls.ospf.qkdlink`, experimental type ``gmpls.qe.CODEPOINTS.te_qkd_link``). One LSA may carry several top-level
TLVs (FRR puts the Router Address and a Link TLV in one LSA); all are decoded and kept in
order, unknown ones as :class:`~gmpls.tlv.UnknownTlv`. Each TLV declares its value as a
:func:`~gmpls.layout.layout`.

Link sub-TLVs: 1 link type, 2 link ID, 3 local and 4 remote interface addresses, 5 TE
metric, 6 maximum bandwidth, 7 maximum reservable bandwidth, 8 unreserved bandwidth, 9
administrative group (RFC 3630 §2.5); 11 link local/remote identifiers, 14 link
protection type, 15 interface switching capability descriptor, 16 SRLG (RFC 4203 §1);
and our wavelength-availability sub-TLV ("Available Labels": RFC 7579 label set fields of
RFC 6205 DWDM labels, under the experimental type ``gmpls.qe.CODEPOINTS.te_available_labels``,
32768 by default; docs/ospf-te.md says why it is not RFC 7580's sub-TLV). Bandwidths are IEEE float32 in bytes per second; switching capabilities and
encodings are the RFC 3471 code points RSVP-TE signals (:mod:`gmpls.rsvp.constants`).
"""

from __future__ import annotations

import struct
from collections.abc import Hashable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from gmpls import ero, qe
from gmpls.errors import EncodeError
from gmpls.layout import REST, Repeat, Tail, Wired, layout
from gmpls.ospf.constants import OpaqueType
from gmpls.ospf.lsa import OPAQUE_BODIES
from gmpls.ospf.qkdlink import QkdLinkTlv
from gmpls.registry import Registry
from gmpls.rsvp.constants import LspEncoding, SwitchingType
from gmpls.tlv import Tlv, UnknownTlv, tlvs
from gmpls.wire import Reader


class _LinkSubTlvs(Registry[Any]):
    """The Link sub-TLV registry, where the Available Labels type is configuration
    (``qe.CODEPOINTS.te_available_labels``, read at each lookup) rather than a fixed code."""

    def get(self, code: Hashable) -> Any:
        if code == qe.CODEPOINTS.te_available_labels:
            return AvailableLabels
        return super().get(code)

    def __contains__(self, code: Hashable) -> bool:
        return self.get(code) is not None

    def codes(self) -> list[Hashable]:
        return [*super().codes(), qe.CODEPOINTS.te_available_labels]


class _TeTlvs(Registry[Any]):
    """The top-level TE TLV registry, where the QKD link TLV's type is configuration
    (``qe.CODEPOINTS.te_qkd_link``, read at each lookup; :mod:`gmpls.ospf.qkdlink`)."""

    def get(self, code: Hashable) -> Any:
        if code == qe.CODEPOINTS.te_qkd_link:
            return QkdLinkTlv
        return super().get(code)

    def __contains__(self, code: Hashable) -> bool:
        return self.get(code) is not None

    def codes(self) -> list[Hashable]:
        return [*super().codes(), qe.CODEPOINTS.te_qkd_link]


TE_TLVS: Registry[Any] = _TeTlvs("ospf.te.tlv", attrs=("TYPE",))
LINK_SUBTLVS: Registry[Any] = _LinkSubTlvs("ospf.te.link.subtlv", attrs=("TYPE",))


class LinkTypeValue:
    POINT_TO_POINT = 1
    MULTI_ACCESS = 2


# ---------------------------------------------------------------- Link sub-TLVs


@LINK_SUBTLVS.register(1)
@layout("link_type:u8")
class LinkType(Tlv):
    """RFC 3630 §2.5.1: 1 point-to-point, 2 multi-access (one octet)."""

    link_type: int


@LINK_SUBTLVS.register(2)
@layout("link_id:ipv4")
class LinkId(Tlv):
    """RFC 3630 §2.5.2: router ID of the neighbour (p2p) or the DR's address (multi-access)."""

    link_id: IPv4Address


@layout(addresses=Repeat("ipv4"))
class _Addresses(Tlv):
    addresses: tuple[IPv4Address, ...]


@LINK_SUBTLVS.register(3)
class LocalAddresses(_Addresses):
    """RFC 3630 §2.5.3: local interface IP address(es)."""

    __slots__ = ()


@LINK_SUBTLVS.register(4)
class RemoteAddresses(_Addresses):
    """RFC 3630 §2.5.4: remote interface IP address(es)."""

    __slots__ = ()


@LINK_SUBTLVS.register(5)
@layout("metric:u32")
class TeMetric(Tlv):
    """RFC 3630 §2.5.5."""

    metric: int


@layout("bandwidth:f32")
class _Bandwidth(Tlv):
    bandwidth: float


@LINK_SUBTLVS.register(6)
class MaxBandwidth(_Bandwidth):
    """RFC 3630 §2.5.6, bytes per second."""

    __slots__ = ()


@LINK_SUBTLVS.register(7)
class MaxReservableBandwidth(_Bandwidth):
    """RFC 3630 §2.5.7, bytes per second."""

    __slots__ = ()


@LINK_SUBTLVS.register(8)
@layout("bandwidths:f32*8")
class UnreservedBandwidth(Tlv):
    """RFC 3630 §2.5.8: unreserved bandwidth at priorities 0..7, bytes per second."""

    bandwidths: tuple[float, ...]


@LINK_SUBTLVS.register(9)
@layout("groups:u32")
class AdminGroup(Tlv):
    """RFC 3630 §2.5.9 (resource class/colour bit mask)."""

    groups: int


@LINK_SUBTLVS.register(11)
@layout("local_id:u32 remote_id:u32")
class LinkLocalRemoteIds(Tlv):
    """RFC 4203 §1.1: identifiers of an unnumbered link at this end and at the far end."""

    local_id: int
    remote_id: int


@LINK_SUBTLVS.register(14)
@layout("protection:u8 reserved:x3")
class LinkProtection(Tlv):
    """RFC 4203 §1.2: protection capability octet, three reserved octets."""

    protection: int


@LINK_SUBTLVS.register(15)
@layout("switching_cap:u8 encoding:u8 reserved:x2 max_lsp_bandwidth:f32*8", specific=REST)
class SwitchingCapability(Tlv):
    """RFC 4203 §1.4 Interface Switching Capability Descriptor.

    Switching capability, encoding, the max LSP bandwidth at priorities 0..7 (float32
    bytes/s), then capability-specific information kept as bytes (PSC: minimum LSP
    bandwidth and MTU; TDM: minimum LSP bandwidth and indication; LSC/FSC: none).
    """

    switching_cap: int
    encoding: int
    max_lsp_bandwidth: tuple[float, ...]
    specific: bytes = b""


@LINK_SUBTLVS.register(16)
@layout(srlgs=Repeat("u32"))
class Srlg(Tlv):
    """RFC 4203 §1.3: shared risk link group values."""

    srlgs: tuple[int, ...]


# ---------------------------------------------------------------- labels


class LabelAction:
    """RFC 7579 §2.6 label set actions."""

    INCLUSIVE_LIST = 0
    EXCLUSIVE_LIST = 1
    INCLUSIVE_RANGE = 2
    EXCLUSIVE_RANGE = 3
    BITMAP = 4


@dataclass(frozen=True, slots=True)
class LabelSet:
    """One RFC 7579 §2.6 label set field of RFC 6205 lambda labels (:mod:`gmpls.ero`).

    ``action`` (4 bits), ``num_labels`` (12 bits), the base label, and the
    action-specific rest (more labels, a range end, or a bitmap) as bytes. The field's
    16-bit length covers the whole field (4-octet multiple).
    """

    action: int
    num_labels: int
    base_label: int
    rest: bytes = b""

    def encode(self) -> bytes:
        if not 0 <= self.action <= 0xF or not 0 <= self.num_labels <= 0xFFF:
            raise EncodeError("rfc7579.label_set", "action or num_labels out of range")
        length = 8 + len(self.rest)
        if length % 4:
            raise EncodeError("rfc7579.label_set", f"length {length} is not a multiple of 4")
        return struct.pack("!HHI", self.action << 12 | self.num_labels, length, self.base_label) + (
            self.rest
        )

    @classmethod
    def decode(cls, r: Reader) -> LabelSet:
        w = r.u16("label_set.action")
        length = r.u16("label_set.length")
        if length < 8 or length % 4:
            raise r.fail("label_set.length", f"{length} is not a 4-octet multiple >= 8")
        base = r.u32("label_set.base_label")
        rest = r.bytes(length - 8, "label_set.rest")
        return cls(w >> 12, w & 0xFFF, base, rest)

    @classmethod
    def bitmap(cls, base_n: int, available: list[int] | tuple[int, ...], count: int) -> LabelSet:
        """A bitmap label set of ``count`` DWDM channels starting at ``base_n``; bit i set
        when channel base_n + i is available (RFC 7579 §2.6.3)."""
        nbits = (count + 31) // 32 * 32
        bits = 0
        for n in available:
            i = n - base_n
            if not 0 <= i < count:
                raise EncodeError("rfc7579.bitmap", f"channel {n} outside {base_n}..+{count}")
            bits |= 1 << (nbits - 1 - i)
        base = ero.lambda_label(base_n)
        return cls(LabelAction.BITMAP, count, base, bits.to_bytes(nbits // 8, "big"))

    def channels(self) -> tuple[int, ...]:
        """The DWDM channel indices n this set includes (inclusive list, range, bitmap)."""
        base = ero.lambda_channel(self.base_label)
        if self.action == LabelAction.BITMAP:
            bits = int.from_bytes(self.rest, "big")
            nbits = len(self.rest) * 8
            return tuple(
                base + i for i in range(min(self.num_labels, nbits)) if bits >> (nbits - 1 - i) & 1
            )
        if self.action == LabelAction.INCLUSIVE_LIST:
            more = [
                ero.lambda_channel(int.from_bytes(self.rest[i : i + 4], "big"))
                for i in range(0, len(self.rest), 4)
            ]
            return (base, *more)
        if self.action == LabelAction.INCLUSIVE_RANGE and len(self.rest) >= 4:
            end = ero.lambda_channel(int.from_bytes(self.rest[:4], "big"))
            return tuple(range(base, end + 1))
        return ()


def _label_sets(r: Reader, name: str) -> tuple[LabelSet, ...]:
    sets = []
    while not r.at_end():
        sets.append(LabelSet.decode(r))
    return tuple(sets)


@layout(label_sets=Tail(lambda sets: b"".join(s.encode() for s in sets), _label_sets))
class AvailableLabels(Tlv):
    """Wavelength availability: label set fields (RFC 7579 §2.6) of RFC 6205 DWDM labels;
    we send one. Its type is configuration (``qe.CODEPOINTS.te_available_labels``, an
    experimental code point); see docs/ospf-te.md."""

    label_sets: tuple[LabelSet, ...]

    def encode(self) -> bytes:
        return UnknownTlv(qe.CODEPOINTS.te_available_labels, self.encode_body()).encode()

    @classmethod
    def from_channels(cls, channels: list[int] | tuple[int, ...]) -> AvailableLabels:
        """Bitmap of the given DWDM channel indices (an empty list gives no label set)."""
        if not channels:
            return cls(())
        lo, hi = min(channels), max(channels)
        return cls((LabelSet.bitmap(lo, channels, hi - lo + 1),))

    def channels(self) -> tuple[int, ...]:
        out: list[int] = []
        for s in self.label_sets:
            out.extend(s.channels())
        return tuple(sorted(set(out)))


# ---------------------------------------------------------------- top-level TLVs


@TE_TLVS.register(1)
@layout("address:ipv4")
class RouterAddress(Tlv):
    """RFC 3630 §2.4.1: a stable address of the advertising router."""

    address: IPv4Address


@TE_TLVS.register(2)
@layout(subtlvs=tlvs(LINK_SUBTLVS, "link.subtlv"))
class Link(Tlv):
    """RFC 3630 §2.4.2: one TE link, described by its sub-TLVs (kept in order)."""

    subtlvs: tuple[Any, ...]

    def find(self, kind: type) -> Any:
        """The first sub-TLV of class ``kind``, or None."""
        for s in self.subtlvs:
            if isinstance(s, kind):
                return s
        return None


@OPAQUE_BODIES.register(OpaqueType.TE)
@layout(tlvs=tlvs(TE_TLVS, "te.tlv"))
class TeLSA(Wired):
    """The body of a TE LSA: one or more top-level TLVs (RFC 3630 §2.3.2)."""

    tlvs: tuple[Any, ...]

    @property
    def router_address(self) -> IPv4Address | None:
        for t in self.tlvs:
            if isinstance(t, RouterAddress):
                return t.address
        return None

    @property
    def links(self) -> tuple[Link, ...]:
        return tuple(t for t in self.tlvs if isinstance(t, Link))


@dataclass(frozen=True, slots=True)
class TeLinkParams:
    """What a node says about one of its TE links; :func:`link_tlv` turns it into a TLV."""

    local_id: int
    remote_id: int
    remote_router: IPv4Address
    te_metric: int
    max_bandwidth: float  # bytes/s
    max_reservable: float
    unreserved: tuple[float, ...]
    channels: tuple[int, ...] = ()
    switching_cap: int = SwitchingType.LSC
    encoding: int = LspEncoding.LAMBDA
    link_type: int = LinkTypeValue.POINT_TO_POINT


def link_tlv(p: TeLinkParams) -> Link:
    """The Link TLV of an unnumbered GMPLS link (RFC 3630 + RFC 4203 + available labels)."""
    subs: list[Any] = [
        LinkType(p.link_type),
        LinkId(p.remote_router),
        LinkLocalRemoteIds(p.local_id, p.remote_id),
        TeMetric(p.te_metric),
        MaxBandwidth(p.max_bandwidth),
        MaxReservableBandwidth(p.max_reservable),
        UnreservedBandwidth(p.unreserved),
        SwitchingCapability(p.switching_cap, p.encoding, p.unreserved),
        AvailableLabels.from_channels(list(p.channels)),
    ]
    return Link(tuple(subs))


def te_lsa_id(instance: int) -> IPv4Address:
    """Link state ID of TE LSA ``instance`` (opaque type 1, RFC 3630 §2.2)."""
    return IPv4Address(OpaqueType.TE << 24 | (instance & 0xFFFFFF))
