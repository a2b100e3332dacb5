"""Router Information opaque LSA (opaque type 4): RFC 7770.

TLVs: Informational Capabilities (1) and Functional Capabilities (2), bit fields whose
bits are numbered from the most significant bit of the first octet (bit 0 = 0x80000000).
Other TLVs (FRR's hostname TLV 7, PCE discovery TLV 6, SR TLVs ...) are kept as
:class:`~gmpls.tlv.UnknownTlv` and re-encoded unchanged.

The QE capability bit (docs/design.md#router-information-capability-bits) and the TE bit are
configuration:
``gmpls.qe.CODEPOINTS.ri_qe_bit`` / ``ri_te_bit``, read when a capability word is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, Self

from gmpls import qe
from gmpls.errors import EncodeError
from gmpls.layout import Wired, layout
from gmpls.ospf.constants import OpaqueType
from gmpls.ospf.lsa import OPAQUE_BODIES
from gmpls.registry import Registry
from gmpls.tlv import Tlv, tlvs
from gmpls.wire import Reader

RI_TLVS: Registry[Any] = Registry("ospf.ri.tlv", attrs=("TYPE",))


class InfoCap:
    """RFC 7770 §2.4 informational capability bits (bit numbers, MSB = 0)."""

    GRACEFUL_RESTART = 0
    GRACEFUL_RESTART_HELPER = 1
    STUB_ROUTER = 2
    TRAFFIC_ENGINEERING = 3
    POINT_TO_POINT_OVER_LAN = 4
    EXPERIMENTAL_TE = 5


def bit_mask(bit: int, octets: int = 4) -> int:
    """Mask of capability bit ``bit`` (numbered from the MSB) in a field of ``octets``."""
    return 1 << (octets * 8 - 1 - bit)


@dataclass(frozen=True, slots=True)
class _Capabilities(Tlv):
    """A capability bit field, 4 octets or a multiple of 4 (RFC 7770 §2.3, §2.4)."""

    flags: int
    octets: int = 4

    def encode_body(self) -> bytes:
        if self.octets <= 0 or self.octets % 4:
            raise EncodeError("ospf.ri.capabilities", f"{self.octets} octets: not 4k, k >= 1")
        try:
            return self.flags.to_bytes(self.octets, "big")
        except OverflowError as e:
            raise EncodeError("ospf.ri.capabilities", str(e)) from e

    @classmethod
    def decode_body(cls, r: Reader, **extra: Any) -> Self:
        n = r.remaining
        if n == 0 or n % 4:
            raise r.fail("capabilities", f"length {n} is not a positive multiple of 4")
        return cls(int.from_bytes(r.bytes(n, "capabilities"), "big"), n)

    def has(self, bit: int) -> bool:
        return bit < self.octets * 8 and bool(self.flags & bit_mask(bit, self.octets))


@RI_TLVS.register(1)
class InformationalCapabilities(_Capabilities):
    """RFC 7770 §2.3 (TLV 1)."""

    __slots__ = ()


@RI_TLVS.register(2)
class FunctionalCapabilities(_Capabilities):
    """RFC 7770 §2.5 (TLV 2)."""

    __slots__ = ()


@OPAQUE_BODIES.register(OpaqueType.RI)
@layout(tlvs=tlvs(RI_TLVS, "ri.tlv"))
class RouterInfoLSA(Wired):
    """The body of a Router Information LSA: TLVs, in order (RFC 7770 §2)."""

    tlvs: tuple[Any, ...]

    @property
    def informational(self) -> InformationalCapabilities | None:
        for t in self.tlvs:
            if isinstance(t, InformationalCapabilities):
                return t
        return None

    @property
    def te_capable(self) -> bool:
        i = self.informational
        return i is not None and i.has(qe.CODEPOINTS.ri_te_bit)

    @property
    def qe_capable(self) -> bool:
        """The QE bit of docs/design.md#router-information-capability-bits (bit
        ``CODEPOINTS.ri_qe_bit``, default 6)."""
        i = self.informational
        return i is not None and i.has(qe.CODEPOINTS.ri_qe_bit)


def capabilities(*, te: bool = True, qe_capable: bool = False) -> InformationalCapabilities:
    """The informational capabilities word of a node: TE bit, and the QE bit if capable.

    With the default code points a TE+QE node advertises 0x12000000 (first octet 0x12,
    the paper's Fig. 7).
    """
    flags = 0
    if te:
        flags |= bit_mask(qe.CODEPOINTS.ri_te_bit)
    if qe_capable:
        flags |= bit_mask(qe.CODEPOINTS.ri_qe_bit)
    return InformationalCapabilities(flags)


def ri_lsa_id(instance: int = 0) -> IPv4Address:
    """Link state ID of the RI LSA (opaque type 4, opaque ID ``instance``, RFC 7770 §2)."""
    return IPv4Address(OpaqueType.RI << 24 | (instance & 0xFFFFFF))
