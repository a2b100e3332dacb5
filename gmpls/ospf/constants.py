"""OSPFv2 architectural constants and code points (RFC 2328 Appendix B, C; RFC 5250).

The QE extension's code points (the Router Information capability bits) are not here:
they are configuration and live in :mod:`gmpls.qe` (``CODEPOINTS.ri_qe_bit``).
"""

from __future__ import annotations

from enum import IntEnum
from ipaddress import IPv4Address

VERSION = 2
HEADER_LEN = 24
LSA_HEADER_LEN = 20
ALL_SPF_ROUTERS = IPv4Address("224.0.0.5")
ALL_D_ROUTERS = IPv4Address("224.0.0.6")
IP_PROTO_OSPF = 89
ZERO = IPv4Address(0)

# RFC 2328 Appendix B: architectural constants (seconds)
LS_REFRESH_TIME = 1800
MIN_LS_INTERVAL = 5
MIN_LS_ARRIVAL = 1
MAX_AGE = 3600
CHECK_AGE = 300
MAX_AGE_DIFF = 900
LS_INFINITY = 0xFFFFFF
INITIAL_SEQUENCE = -0x7FFFFFFF  # 0x80000001 as a signed 32-bit number
MAX_SEQUENCE = 0x7FFFFFFF


class PacketType(IntEnum):
    """RFC 2328 §A.3.1."""

    HELLO = 1
    DB_DESCRIPTION = 2
    LS_REQUEST = 3
    LS_UPDATE = 4
    LS_ACK = 5


class AuType(IntEnum):
    """RFC 2328 Appendix D."""

    NULL = 0
    SIMPLE = 1
    CRYPTOGRAPHIC = 2


class LsType(IntEnum):
    """RFC 2328 §A.4.1 and RFC 5250 §3."""

    ROUTER = 1
    NETWORK = 2
    SUMMARY_NETWORK = 3
    SUMMARY_ASBR = 4
    AS_EXTERNAL = 5
    NSSA = 7
    OPAQUE_LINK = 9
    OPAQUE_AREA = 10
    OPAQUE_AS = 11


OPAQUE_TYPES = frozenset({9, 10, 11})


class OpaqueType(IntEnum):
    """IANA Opaque Link-State Advertisements (LSA) Option Types."""

    TE = 1  # RFC 3630
    RI = 4  # RFC 7770


class Options:
    """Options field bits (RFC 2328 §A.2, RFC 5250 §A.1)."""

    MT = 0x01  # formerly T (TOS)
    E = 0x02
    MC = 0x04
    NP = 0x08
    L = 0x10  # LLS data block present (RFC 5613)
    DC = 0x20
    O = 0x40  # noqa: E741 - the RFC's name
    DN = 0x80


class DDFlags:
    """Database Description flags (RFC 2328 §A.3.3)."""

    MS = 0x01
    M = 0x02
    I = 0x04  # noqa: E741 - the RFC's name


class RouterLinkType(IntEnum):
    """Router-LSA link types (RFC 2328 §A.4.2)."""

    POINT_TO_POINT = 1
    TRANSIT = 2
    STUB = 3
    VIRTUAL = 4


class RouterFlags:
    """Router-LSA flags (RFC 2328 §A.4.2)."""

    B = 0x01
    E = 0x02
    V = 0x04
