"""The key relay path in PCEP (docs/pcep.md#the-relay-path-tlv).

When the two QE ends of a service sit at key-management sites that share no QKD link,
their key managers relay a key hop by hop through trusted sites (docs/design.md). The PCE
chooses that path with the optical one and hands it to the head in the RELAY-PATH TLV::

    Type = qe.CODEPOINTS.pcep_relay_tlv (65520, RFC 8356 experimental range) | Length = 4 n
    Site ID 1 (IPv4: the head's site) | ... | Site ID n (the tail's site)

n >= 1: one site (both ends at one site, no QKD link used), two (adjacent sites, the
direct QKD link), more (trusted-node relay through the sites between). A site ID is the
router ID of the site's site node, as in OSPF-TE's QKD-link TLV. The TLV rides in the
object that names the service: the RP object of a PCRep's response
(:attr:`gmpls.pcep.messages.Response.relay`), the LSP object of a PCUpd, PCInitiate or
PCRpt (:attr:`gmpls.pcep.messages.LspEntry.relay`). Both objects carry optional TLVs that
a PCC ignores when it does not know them (RFC 5440 §7.1) and tshark decodes as TLVs of an
unknown type, nothing malformed.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any, Self

from gmpls import qe
from gmpls.layout import Repeat, layout
from gmpls.pcep.tlv import TLVS
from gmpls.tlv import AnyTlv, Tlv, UnknownTlv
from gmpls.wire import Reader


@layout(sites=Repeat("ipv4"))
class RelayPathTlv(Tlv):
    """The key relay path: site IDs, head site first, tail site last (at least one)."""

    sites: tuple[IPv4Address, ...]

    def encode(self) -> bytes:
        return UnknownTlv(qe.CODEPOINTS.pcep_relay_tlv, self.encode_body()).encode()

    @classmethod
    def decode_body(cls, r: Reader, **extra: Any) -> Self:
        tlv: Self = cls.WIRE.decode(cls, r, **extra)
        if not tlv.sites:
            raise r.fail("sites", "a relay path names at least one site")
        return tlv


TLVS.configured(lambda: qe.CODEPOINTS.pcep_relay_tlv, RelayPathTlv)


def relay_of(tlvs: tuple[AnyTlv, ...]) -> tuple[IPv4Address, ...]:
    """The relay path among ``tlvs`` (an object's TLVs), ``()`` when there is none."""
    for t in tlvs:
        if isinstance(t, RelayPathTlv):
            return t.sites
    return ()


def with_relay(tlvs: tuple[AnyTlv, ...], sites: tuple[IPv4Address, ...]) -> tuple[AnyTlv, ...]:
    """``tlvs`` with their relay path replaced by ``sites`` (removed when empty)."""
    kept = tuple(t for t in tlvs if not isinstance(t, RelayPathTlv))
    return (*kept, RelayPathTlv(tuple(sites))) if sites else kept
