"""A tiny pcap writer and IPv4/TCP/Ethernet framing, for tests that hand our packets to
tshark (the independent decoder) and for debugging captures.

Pure functions over bytes (no sockets). Typical use::

    frame = ethernet_frame(ipv4_packet("10.1.1.1", "224.0.0.5", 89, ospf_bytes))
    write_pcap("out.pcap", [frame])

For TCP protocols (PCEP) use :func:`tcp_segment` for the payload of :func:`ipv4_packet`
(``proto=6``), with increasing ``seq`` for consecutive segments of one stream.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from ipaddress import IPv4Address

from gmpls.checksum import inet_checksum

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IPv4/IPv6


def _ip(v: IPv4Address | str) -> IPv4Address:
    return v if isinstance(v, IPv4Address) else IPv4Address(v)


def multicast_mac(dst: IPv4Address | str) -> bytes:
    """The Ethernet address of an IPv4 multicast group (RFC 1112 §6.4)."""
    d = _ip(dst).packed
    return bytes([0x01, 0x00, 0x5E, d[1] & 0x7F, d[2], d[3]])


def host_mac(addr: IPv4Address | str) -> bytes:
    """A locally administered MAC derived from an IPv4 address (02:00:a.b.c.d)."""
    return b"\x02\x00" + _ip(addr).packed


def ipv4_packet(
    src: IPv4Address | str,
    dst: IPv4Address | str,
    proto: int,
    payload: bytes,
    *,
    ttl: int = 1,
    ident: int = 0,
    tos: int = 0xC0,
    router_alert: bool = False,
) -> bytes:
    """An IPv4 datagram (RFC 791) with a correct header checksum.

    ``tos`` defaults to 0xC0 (DSCP CS6, internetwork control, as routing protocols use);
    ``router_alert`` adds the RFC 2113 option (RSVP Path messages carry it).
    """
    options = b"\x94\x04\x00\x00" if router_alert else b""
    ihl = 5 + len(options) // 4
    total = ihl * 4 + len(payload)
    head = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl,
        tos,
        total,
        ident,
        0x4000,  # don't fragment
        ttl,
        proto,
        0,
        _ip(src).packed,
        _ip(dst).packed,
    )
    head += options
    cks = inet_checksum(head)
    return head[:10] + struct.pack("!H", cks) + head[12:] + payload


def tcp_segment(
    src: IPv4Address | str,
    dst: IPv4Address | str,
    sport: int,
    dport: int,
    payload: bytes,
    *,
    seq: int = 1,
    ack: int = 1,
    flags: int = 0x18,  # PSH|ACK
    window: int = 65535,
) -> bytes:
    """A TCP segment (RFC 793) with its checksum over the IPv4 pseudo-header; use it as
    the payload of :func:`ipv4_packet` with ``proto=6``."""
    head = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, window, 0, 0)
    pseudo = _ip(src).packed + _ip(dst).packed + struct.pack("!BBH", 0, 6, len(head) + len(payload))
    cks = inet_checksum(pseudo + head + payload)
    return head[:16] + struct.pack("!H", cks) + head[18:] + payload


def udp_datagram(
    src: IPv4Address | str, dst: IPv4Address | str, sport: int, dport: int, payload: bytes
) -> bytes:
    """A UDP datagram (RFC 768) with its checksum; payload of :func:`ipv4_packet`, proto 17."""
    length = 8 + len(payload)
    pseudo = _ip(src).packed + _ip(dst).packed + struct.pack("!BBH", 0, 17, length)
    head = struct.pack("!HHHH", sport, dport, length, 0)
    cks = inet_checksum(pseudo + head + payload) or 0xFFFF
    return head[:6] + struct.pack("!H", cks) + payload


def ethernet_frame(
    ip_packet: bytes, *, src_mac: bytes | None = None, dst_mac: bytes | None = None
) -> bytes:
    """Wrap an IPv4 datagram in Ethernet II; MACs default from the IP addresses."""
    src = ip_packet[12:16]
    dst = ip_packet[16:20]
    if dst_mac is None:
        dst_mac = (
            multicast_mac(IPv4Address(dst)) if 224 <= dst[0] <= 239 else host_mac(IPv4Address(dst))
        )
    if src_mac is None:
        src_mac = host_mac(IPv4Address(src))
    return dst_mac + src_mac + b"\x08\x00" + ip_packet


def pcap_bytes(
    frames: Iterable[bytes], *, linktype: int = LINKTYPE_ETHERNET, start: float = 1_500_000_000.0
) -> bytes:
    """A classic pcap file (microsecond timestamps), one record per frame, 1 ms apart."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    for i, f in enumerate(frames):
        t = start + i / 1000.0
        sec = int(t)
        usec = round((t - sec) * 1_000_000)
        out.append(struct.pack("<IIII", sec, usec, len(f), len(f)) + f)
    return b"".join(out)


def write_pcap(path: str, frames: Iterable[bytes], *, linktype: int = LINKTYPE_ETHERNET) -> None:
    """Write ``frames`` (Ethernet frames by default) to a pcap file at ``path``."""
    with open(path, "wb") as fh:
        fh.write(pcap_bytes(frames, linktype=linktype))
