"""Traffic Engineering opaque LSA (opaque type 1): RFC 3630 with the GMPLS sub-TLVs of
RFC 4203 and a wavelength-availability sub-TLV (docs/ospf-te.md).

Top-level TLVs: Router Address (1) and Link (2). One LSA may carry several top-level
TLVs (FRR puts the Router Address and a Link TLV in one LSA); all are decoded and kept in
order, unknown ones as :class:`~gmpls.ospf.tlv.UnknownTLV`.

Link sub-TLVs: 1 link type, 2 link ID, 3 local and 4 remote interface addresses, 5 TE
metric, 6 maximum bandwidth, 7 maximum reservable bandwidth, 8 unreserved bandwidth, 9
administrative group (RFC 3630 §2.5); 11 link local/remote identifiers, 14 link
protection type, 15 interface switching capability descriptor, 16 SRLG (RFC 4203 §1);
35 available labels (RFC 7580 style, a list of RFC 7579 label set fields carrying RFC 6205
DWDM labels). Bandwidths are IEEE float32 in bytes per second.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, ClassVar

from gmpls.errors import EncodeError
from gmpls.ospf.constants import OpaqueType
from gmpls.ospf.lsa import OPAQUE_BODIES
from gmpls.ospf.tlv import decode_tlvs, encode_tlvs
from gmpls.registry import Registry
from gmpls.wire import Reader, f32, u32

TE_TLVS: Registry[Any] = Registry("ospf.te.tlv")
LINK_SUBTLVS: Registry[Any] = Registry("ospf.te.link.subtlv")

#: sub-TLV type of the available-labels (wavelength availability) sub-TLV; see docs/ospf-te.md
AVAILABLE_LABELS_TYPE = 35


class LinkTypeValue:
    POINT_TO_POINT = 1
    MULTI_ACCESS = 2


class SwitchingCap:
    """Interface switching capability values (RFC 4203 §1.4, RFC 3471 §3.1.2)."""

    PSC1 = 1
    PSC2 = 2
    PSC3 = 3
    PSC4 = 4
    L2SC = 51
    TDM = 100
    LSC = 150
    FSC = 200


class Encoding:
    """LSP encoding types (RFC 3471 §3.1.1)."""

    PACKET = 1
    ETHERNET = 2
    SDH = 5
    DIGITAL_WRAPPER = 7
    LAMBDA = 8
    FIBER = 9
    FIBER_CHANNEL = 11


# ---------------------------------------------------------------- Link sub-TLVs


@LINK_SUBTLVS.register(1)
@dataclass(frozen=True, slots=True)
class LinkType:
    """RFC 3630 §2.5.1: 1 point-to-point, 2 multi-access (one octet)."""

    link_type: int
    TYPE: ClassVar[int] = 1

    def value(self) -> bytes:
        return bytes([self.link_type])

    @classmethod
    def from_value(cls, r: Reader) -> LinkType:
        return cls(r.u8("link_type"))


@LINK_SUBTLVS.register(2)
@dataclass(frozen=True, slots=True)
class LinkId:
    """RFC 3630 §2.5.2: router ID of the neighbour (p2p) or the DR's address (multi-access)."""

    link_id: IPv4Address
    TYPE: ClassVar[int] = 2

    def value(self) -> bytes:
        return self.link_id.packed

    @classmethod
    def from_value(cls, r: Reader) -> LinkId:
        return cls(r.ipv4("link_id"))


def _addresses(r: Reader, field: str) -> tuple[IPv4Address, ...]:
    if r.remaining % 4:
        raise r.fail(field, f"{r.remaining} bytes is not a list of IPv4 addresses")
    return tuple(r.ipv4(field) for _ in range(r.remaining // 4))


@LINK_SUBTLVS.register(3)
@dataclass(frozen=True, slots=True)
class LocalAddresses:
    """RFC 3630 §2.5.3: local interface IP address(es)."""

    addresses: tuple[IPv4Address, ...]
    TYPE: ClassVar[int] = 3

    def value(self) -> bytes:
        return b"".join(a.packed for a in self.addresses)

    @classmethod
    def from_value(cls, r: Reader) -> LocalAddresses:
        return cls(_addresses(r, "local_address"))


@LINK_SUBTLVS.register(4)
@dataclass(frozen=True, slots=True)
class RemoteAddresses:
    """RFC 3630 §2.5.4: remote interface IP address(es)."""

    addresses: tuple[IPv4Address, ...]
    TYPE: ClassVar[int] = 4

    def value(self) -> bytes:
        return b"".join(a.packed for a in self.addresses)

    @classmethod
    def from_value(cls, r: Reader) -> RemoteAddresses:
        return cls(_addresses(r, "remote_address"))


@LINK_SUBTLVS.register(5)
@dataclass(frozen=True, slots=True)
class TeMetric:
    """RFC 3630 §2.5.5."""

    metric: int
    TYPE: ClassVar[int] = 5

    def value(self) -> bytes:
        return u32(self.metric)

    @classmethod
    def from_value(cls, r: Reader) -> TeMetric:
        return cls(r.u32("te_metric"))


@LINK_SUBTLVS.register(6)
@dataclass(frozen=True, slots=True)
class MaxBandwidth:
    """RFC 3630 §2.5.6, bytes per second."""

    bandwidth: float
    TYPE: ClassVar[int] = 6

    def value(self) -> bytes:
        return f32(self.bandwidth)

    @classmethod
    def from_value(cls, r: Reader) -> MaxBandwidth:
        return cls(r.f32("max_bandwidth"))


@LINK_SUBTLVS.register(7)
@dataclass(frozen=True, slots=True)
class MaxReservableBandwidth:
    """RFC 3630 §2.5.7, bytes per second."""

    bandwidth: float
    TYPE: ClassVar[int] = 7

    def value(self) -> bytes:
        return f32(self.bandwidth)

    @classmethod
    def from_value(cls, r: Reader) -> MaxReservableBandwidth:
        return cls(r.f32("max_reservable_bandwidth"))


def _eight_floats(values: tuple[float, ...], field: str) -> bytes:
    if len(values) != 8:
        raise EncodeError(field, f"needs 8 priorities, has {len(values)}")
    return b"".join(f32(v) for v in values)


@LINK_SUBTLVS.register(8)
@dataclass(frozen=True, slots=True)
class UnreservedBandwidth:
    """RFC 3630 §2.5.8: unreserved bandwidth at priorities 0..7, bytes per second."""

    bandwidths: tuple[float, ...]
    TYPE: ClassVar[int] = 8

    def value(self) -> bytes:
        return _eight_floats(self.bandwidths, "ospf.te.unreserved_bandwidth")

    @classmethod
    def from_value(cls, r: Reader) -> UnreservedBandwidth:
        return cls(tuple(r.f32(f"unreserved[{i}]") for i in range(8)))


@LINK_SUBTLVS.register(9)
@dataclass(frozen=True, slots=True)
class AdminGroup:
    """RFC 3630 §2.5.9 (resource class/colour bit mask)."""

    groups: int
    TYPE: ClassVar[int] = 9

    def value(self) -> bytes:
        return u32(self.groups)

    @classmethod
    def from_value(cls, r: Reader) -> AdminGroup:
        return cls(r.u32("admin_group"))


@LINK_SUBTLVS.register(11)
@dataclass(frozen=True, slots=True)
class LinkLocalRemoteIds:
    """RFC 4203 §1.1: identifiers of an unnumbered link at this end and at the far end."""

    local_id: int
    remote_id: int
    TYPE: ClassVar[int] = 11

    def value(self) -> bytes:
        return u32(self.local_id) + u32(self.remote_id)

    @classmethod
    def from_value(cls, r: Reader) -> LinkLocalRemoteIds:
        return cls(r.u32("link_local_id"), r.u32("link_remote_id"))


@LINK_SUBTLVS.register(14)
@dataclass(frozen=True, slots=True)
class LinkProtection:
    """RFC 4203 §1.2: protection capability octet, three reserved octets."""

    protection: int
    TYPE: ClassVar[int] = 14

    def value(self) -> bytes:
        return bytes([self.protection, 0, 0, 0])

    @classmethod
    def from_value(cls, r: Reader) -> LinkProtection:
        cap = r.u8("protection")
        r.bytes(3, "protection_reserved")
        return cls(cap)


@LINK_SUBTLVS.register(15)
@dataclass(frozen=True, slots=True)
class SwitchingCapability:
    """RFC 4203 §1.4 Interface Switching Capability Descriptor.

    Switching capability, encoding, the max LSP bandwidth at priorities 0..7 (float32
    bytes/s), then capability-specific information kept as bytes (PSC: minimum LSP
    bandwidth and MTU; TDM: minimum LSP bandwidth and indication; LSC/FSC: none).
    """

    switching_cap: int
    encoding: int
    max_lsp_bandwidth: tuple[float, ...]
    specific: bytes = b""
    TYPE: ClassVar[int] = 15

    def value(self) -> bytes:
        head = bytes([self.switching_cap, self.encoding, 0, 0])
        return head + _eight_floats(self.max_lsp_bandwidth, "ospf.te.iscd") + self.specific

    @classmethod
    def from_value(cls, r: Reader) -> SwitchingCapability:
        cap = r.u8("switching_cap")
        enc = r.u8("encoding")
        r.bytes(2, "iscd_reserved")
        bws = tuple(r.f32(f"max_lsp_bandwidth[{i}]") for i in range(8))
        return cls(cap, enc, bws, r.rest())


@LINK_SUBTLVS.register(16)
@dataclass(frozen=True, slots=True)
class Srlg:
    """RFC 4203 §1.3: shared risk link group values."""

    srlgs: tuple[int, ...]
    TYPE: ClassVar[int] = 16

    def value(self) -> bytes:
        return b"".join(u32(v) for v in self.srlgs)

    @classmethod
    def from_value(cls, r: Reader) -> Srlg:
        if r.remaining % 4:
            raise r.fail("srlg", f"{r.remaining} bytes is not a list of 32-bit SRLGs")
        return cls(tuple(r.u32("srlg") for _ in range(r.remaining // 4)))


# ---------------------------------------------------------------- labels


def dwdm_label(n: int, *, channel_spacing: int = 1, identifier: int = 0, grid: int = 1) -> int:
    """An RFC 6205 §3.2 lambda label: Grid (3 bits), C.S. (4), Identifier (9), n (16, signed).

    Grid 1 = ITU-T DWDM; channel spacing 1 = 100 GHz; frequency = 193.1 THz + n x spacing.
    """
    if not -0x8000 <= n <= 0x7FFF:
        raise EncodeError("rfc6205.n", f"{n} does not fit a signed 16-bit field")
    return (
        (grid & 7) << 29 | (channel_spacing & 0xF) << 25 | (identifier & 0x1FF) << 16 | (n & 0xFFFF)
    )


@dataclass(frozen=True, slots=True)
class DwdmLabel:
    grid: int
    channel_spacing: int
    identifier: int
    n: int

    @classmethod
    def parse(cls, label: int) -> DwdmLabel:
        n = label & 0xFFFF
        if n >= 0x8000:
            n -= 0x10000
        return cls(label >> 29, (label >> 25) & 0xF, (label >> 16) & 0x1FF, n)

    @property
    def frequency_thz(self) -> float:
        spacing_ghz = {1: 100.0, 2: 50.0, 3: 25.0, 4: 12.5}.get(self.channel_spacing, 0.0)
        return 193.1 + self.n * spacing_ghz / 1000.0


class LabelAction:
    """RFC 7579 §2.6 label set actions."""

    INCLUSIVE_LIST = 0
    EXCLUSIVE_LIST = 1
    INCLUSIVE_RANGE = 2
    EXCLUSIVE_RANGE = 3
    BITMAP = 4


@dataclass(frozen=True, slots=True)
class LabelSet:
    """One RFC 7579 §2.6 label set field.

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
        return cls(LabelAction.BITMAP, count, dwdm_label(base_n), bits.to_bytes(nbits // 8, "big"))

    def channels(self) -> tuple[int, ...]:
        """The DWDM channel indices n this set includes (inclusive list, range, bitmap)."""
        base = DwdmLabel.parse(self.base_label).n
        if self.action == LabelAction.BITMAP:
            bits = int.from_bytes(self.rest, "big")
            nbits = len(self.rest) * 8
            return tuple(
                base + i for i in range(min(self.num_labels, nbits)) if bits >> (nbits - 1 - i) & 1
            )
        if self.action == LabelAction.INCLUSIVE_LIST:
            more = [
                DwdmLabel.parse(int.from_bytes(self.rest[i : i + 4], "big")).n
                for i in range(0, len(self.rest), 4)
            ]
            return (base, *more)
        if self.action == LabelAction.INCLUSIVE_RANGE and len(self.rest) >= 4:
            end = DwdmLabel.parse(int.from_bytes(self.rest[:4], "big")).n
            return tuple(range(base, end + 1))
        return ()


@LINK_SUBTLVS.register(AVAILABLE_LABELS_TYPE)
@dataclass(frozen=True, slots=True)
class AvailableLabels:
    """Wavelength availability: RFC 7580-style Available Labels, label set fields (RFC 7579
    §2.6) of RFC 6205 DWDM labels. See docs/ospf-te.md for the choice of encoding."""

    label_sets: tuple[LabelSet, ...]
    TYPE: ClassVar[int] = AVAILABLE_LABELS_TYPE

    def value(self) -> bytes:
        return b"".join(s.encode() for s in self.label_sets)

    @classmethod
    def from_value(cls, r: Reader) -> AvailableLabels:
        sets = []
        while not r.at_end():
            sets.append(LabelSet.decode(r))
        return cls(tuple(sets))

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
@dataclass(frozen=True, slots=True)
class RouterAddress:
    """RFC 3630 §2.4.1: a stable address of the advertising router."""

    address: IPv4Address
    TYPE: ClassVar[int] = 1

    def value(self) -> bytes:
        return self.address.packed

    @classmethod
    def from_value(cls, r: Reader) -> RouterAddress:
        return cls(r.ipv4("router_address"))


@TE_TLVS.register(2)
@dataclass(frozen=True, slots=True)
class Link:
    """RFC 3630 §2.4.2: one TE link, described by its sub-TLVs (kept in order)."""

    subtlvs: tuple[Any, ...]
    TYPE: ClassVar[int] = 2

    def value(self) -> bytes:
        return encode_tlvs(self.subtlvs)

    @classmethod
    def from_value(cls, r: Reader) -> Link:
        return cls(decode_tlvs(r, LINK_SUBTLVS, "link.subtlv"))

    def find(self, kind: type) -> Any:
        """The first sub-TLV of class ``kind``, or None."""
        for s in self.subtlvs:
            if isinstance(s, kind):
                return s
        return None


@OPAQUE_BODIES.register(OpaqueType.TE)
@dataclass(frozen=True, slots=True)
class TeLSA:
    """The body of a TE LSA: one or more top-level TLVs (RFC 3630 §2.3.2)."""

    tlvs: tuple[Any, ...]

    def encode(self) -> bytes:
        return encode_tlvs(self.tlvs)

    @classmethod
    def decode(cls, r: Reader, ls_id: IPv4Address) -> TeLSA:
        return cls(decode_tlvs(r, TE_TLVS, "te.tlv"))

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
    switching_cap: int = SwitchingCap.LSC
    encoding: int = Encoding.LAMBDA
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
