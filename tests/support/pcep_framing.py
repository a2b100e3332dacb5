"""A PCEP conversation over one TCP connection as pcap frames (for tshark tests)."""

from __future__ import annotations

from collections.abc import Iterable

from tests.support.pcap import ethernet_frame, ipv4_packet, tcp_segment

PCC_ADDR = "10.1.1.1"
PCE_ADDR = "10.1.1.200"
PCC_PORT = 40000
PCE_PORT = 4189


def conversation(messages: Iterable[tuple[bool, bytes]]) -> list[bytes]:
    """Ethernet frames: a TCP handshake, then each (from_pcc, payload) as one segment with
    consistent sequence and acknowledgement numbers, so tshark's TCP analysis has nothing
    to warn about."""
    seq = {True: 1000, False: 5000}
    addr = {True: (PCC_ADDR, PCC_PORT), False: (PCE_ADDR, PCE_PORT)}

    def seg(from_pcc: bool, payload: bytes, flags: int) -> bytes:
        (src, sport), (dst, dport) = addr[from_pcc], addr[not from_pcc]
        ack = seq[not from_pcc] if flags != 0x02 else 0
        s = tcp_segment(src, dst, sport, dport, payload, seq=seq[from_pcc], ack=ack, flags=flags)
        seq[from_pcc] += len(payload) + (1 if flags & 0x02 else 0)
        return ethernet_frame(ipv4_packet(src, dst, 6, s, ttl=64, tos=0xC0))

    frames = [seg(True, b"", 0x02), seg(False, b"", 0x12), seg(True, b"", 0x10)]
    frames.extend(seg(from_pcc, payload, 0x18) for from_pcc, payload in messages)
    return frames
