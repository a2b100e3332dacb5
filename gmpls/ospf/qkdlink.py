"""The QKD link TLV: a top-level TE TLV (RFC 3630 §2.3.2) that tells the area about one
QKD link of a key-management site (docs/ospf-te.md#the-qkd-link-tlv).

Its type is configuration, ``gmpls.qe.CODEPOINTS.te_qkd_link`` (32769 by default, from
RFC 3630's experimental range 32768-32777); one QKD link TLV per TE opaque LSA, with
opaque IDs from :data:`QKD_OPAQUE_ID_BASE` up, so they never meet the opaque IDs of the
TE Router Address (0) and Link LSAs (the TE link's interface ID). Its value is sub-TLVs,
numbered inside this TLV:

====  ===============  ======  ==================================================
type  name             length  value
====  ===============  ======  ==================================================
1     local site ID    4       router ID of the advertising site's site node
2     far site ID      4       router ID of the site node at the link's other end
3     key rate         4       rate of the advertising end's key stream, b/s (u32)
4     key stock        8       key bits that end can draw now (u64)
5     key buffer       8       most key bits that end's stream can hold (u64)
6     link state       4       1 up, 0 down (u32)
====  ===============  ======  ==================================================

All six are required; they are sent in that order, read in any order; an unknown
sub-TLV is skipped (room to grow), a repeated or missing one makes the TLV malformed
(:class:`~gmpls.errors.DecodeError`). :func:`qkd_links` finds the QKD link TLVs in a TE
LSA body, whether the TE codec decoded them (:class:`QkdLinkTlv`) or kept them raw
(:class:`~gmpls.tlv.UnknownTlv` of the configured type).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, ClassVar

from gmpls import qe
from gmpls.layout import layout
from gmpls.ospf.constants import OpaqueType
from gmpls.registry import Registry
from gmpls.tlv import Tlv, UnknownTlv, decode_tlvs, encode_tlvs
from gmpls.wire import Reader

QKD_SUBTLVS: Registry[Any] = Registry("ospf.te.qkd_link.subtlv", attrs=("TYPE",))

#: first opaque ID of the QKD link TE LSAs (instance k is QKD_OPAQUE_ID_BASE + k, up to
#: 0xFFFF: the top octet of the 24-bit opaque ID stays zero, which tshark reads as a
#: reserved octet and a 16-bit instance)
QKD_OPAQUE_ID_BASE = 0x8000
QKD_OPAQUE_ID_COUNT = 0x8000


@QKD_SUBTLVS.register(1)
@layout("site:ipv4")
class LocalSite(Tlv):
    site: IPv4Address


@QKD_SUBTLVS.register(2)
@layout("site:ipv4")
class FarSite(Tlv):
    site: IPv4Address


@QKD_SUBTLVS.register(3)
@layout("bps:u32")
class KeyRate(Tlv):
    bps: int


@QKD_SUBTLVS.register(4)
@layout("bits:u64")
class KeyStock(Tlv):
    bits: int


@QKD_SUBTLVS.register(5)
@layout("bits:u64")
class KeyBuffer(Tlv):
    bits: int


@QKD_SUBTLVS.register(6)
@layout("state:u32", state=range(2))
class LinkState(Tlv):
    state: int


#: sub-TLV class -> the QkdLinkTlv field it fills, and how
_FIELDS: dict[type, tuple[str, str]] = {
    LocalSite: ("local_site", "site"),
    FarSite: ("far_site", "site"),
    KeyRate: ("rate_bps", "bps"),
    KeyStock: ("stock_bits", "bits"),
    KeyBuffer: ("buffer_bits", "bits"),
    LinkState: ("up", "state"),
}


@dataclass(frozen=True, slots=True)
class QkdLinkTlv:
    """One QKD link as its site's node advertises it: the two site IDs, the rate (b/s),
    stock and buffer (bits) of the advertising end's key stream (what the sessions it
    opens over the link draw from), and whether the link is up."""

    local_site: IPv4Address
    far_site: IPv4Address
    rate_bps: int
    stock_bits: int
    buffer_bits: int
    up: bool

    #: the sub-TLV registry (for tools that walk the TLV tree)
    SUBTLVS: ClassVar[Registry[Any]] = QKD_SUBTLVS

    def subtlvs(self) -> tuple[Tlv, ...]:
        return (
            LocalSite(self.local_site),
            FarSite(self.far_site),
            KeyRate(self.rate_bps),
            KeyStock(self.stock_bits),
            KeyBuffer(self.buffer_bits),
            LinkState(1 if self.up else 0),
        )

    def encode_body(self) -> bytes:
        return encode_tlvs(self.subtlvs())

    def encode(self) -> bytes:
        """The whole TLV, under the configured type ``qe.CODEPOINTS.te_qkd_link``."""
        return UnknownTlv(qe.CODEPOINTS.te_qkd_link, self.encode_body()).encode()

    @classmethod
    def decode_body(cls, r: Reader, **extra: Any) -> QkdLinkTlv:
        values: dict[str, Any] = {}
        for s in decode_tlvs(r, QKD_SUBTLVS, "qkd_link.subtlv"):
            if isinstance(s, UnknownTlv):
                continue  # a sub-TLV of a later version: skipped
            name, attr = _FIELDS[type(s)]
            if name in values:
                raise r.fail(f"subtlv<{s.TYPE}>", "repeated")
            values[name] = getattr(s, attr)
        missing = [n for n, _ in _FIELDS.values() if n not in values]
        if missing:
            raise r.fail("subtlvs", f"missing {', '.join(missing)}")
        values["up"] = values["up"] == 1
        return cls(**values)

    @classmethod
    def decode(cls, data: bytes) -> QkdLinkTlv:
        """One whole TLV (header, value, padding) of the configured type."""
        r = Reader(data, "ospf.te.qkd_link")
        t = r.u16("type")
        if t != qe.CODEPOINTS.te_qkd_link:
            raise r.fail("type", f"{t} is not the QKD link TLV {qe.CODEPOINTS.te_qkd_link}")
        n = r.u16("length")
        v = r.sub(n, "value")
        r.bytes(-n % 4, "padding")
        r.expect_end("tlv")
        out = cls.decode_body(v)
        v.expect_end("value")
        return out


def qkd_links(body: Any) -> tuple[QkdLinkTlv, ...]:
    """The QKD link TLVs of a TE LSA body (anything with ``tlvs``; other bodies have
    none), in order. A raw TLV of the configured type is decoded here; a malformed one
    raises :class:`~gmpls.errors.DecodeError` (the caller counts and skips the LSA)."""
    out: list[QkdLinkTlv] = []
    for t in getattr(body, "tlvs", ()):
        if isinstance(t, QkdLinkTlv):
            out.append(t)
        elif isinstance(t, UnknownTlv) and t.type == qe.CODEPOINTS.te_qkd_link:
            r = Reader(t.value, f"ospf.te.tlv<{t.type}>")
            out.append(QkdLinkTlv.decode_body(r))
            r.expect_end("value")
    return tuple(out)


def qkd_link(body: Any) -> QkdLinkTlv | None:
    """The QKD link TLV of a TE LSA body (the first, there should be one), or None."""
    found = qkd_links(body)
    return found[0] if found else None


def qkd_lsa_id(instance: int) -> IPv4Address:
    """Link state ID of QKD link TE LSA ``instance`` (opaque type 1, opaque ID
    :data:`QKD_OPAQUE_ID_BASE` + ``instance``)."""
    if not 0 <= instance < QKD_OPAQUE_ID_COUNT:
        raise ValueError(
            f"QKD link LSA instance {instance} out of range 0..{QKD_OPAQUE_ID_COUNT - 1}"
        )
    return IPv4Address(OpaqueType.TE << 24 | (QKD_OPAQUE_ID_BASE + instance))


def is_qkd_lsa_id(ls_id: IPv4Address) -> bool:
    """The link state ID is a TE LSA in the QKD link range."""
    opaque_id = int(ls_id) & 0xFFFFFF
    in_range = QKD_OPAQUE_ID_BASE <= opaque_id < QKD_OPAQUE_ID_BASE + QKD_OPAQUE_ID_COUNT
    return int(ls_id) >> 24 == OpaqueType.TE and in_range
