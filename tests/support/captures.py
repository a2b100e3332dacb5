"""Reading what crossed a domain back out of a tcpdump capture (classic pcap, Ethernet),
and decoding it with our own codecs: RSVP messages on the control LAN, ETSI 004 replies
on the node-to-proxy domains. tshark is the independent decoder elsewhere; this is the
byte-exact view (a handle or a key is compared bit for bit)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from gmpls import ero
from gmpls.errors import DecodeError
from gmpls.qkd import etsi004 as etsi
from gmpls.rsvp import decode as rsvp_decode
from gmpls.rsvp import objects as O
from gmpls.rsvp.message import Message


@dataclass(frozen=True, slots=True)
class Packet:
    t: float
    src: IPv4Address
    dst: IPv4Address
    proto: int
    payload: bytes  # the IP payload (UDP: the UDP payload, see ``sport``/``dport``)
    sport: int = 0
    dport: int = 0


def packets(path: Path | str) -> Iterator[Packet]:
    """IPv4 packets of a pcap (microsecond or nanosecond, either byte order), Ethernet
    link type; UDP is unwrapped. Truncated tails (a capture still being written) end the
    iteration quietly."""
    data = Path(path).read_bytes()
    if len(data) < 24:
        return
    magic = data[:4]
    order = {
        b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
        b"\xa1\xb2\xc3\xd4": (">", 1e-6),
        b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
        b"\xa1\xb2\x3c\x4d": (">", 1e-9),
    }.get(magic)
    if order is None:
        raise ValueError(f"{path}: not a classic pcap file")
    e, unit = order
    linktype = struct.unpack(e + "I", data[20:24])[0]
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(e + "IIII", data[pos : pos + 16])
        pos += 16
        frame = data[pos : pos + incl]
        pos += incl
        if len(frame) < incl:
            return
        if linktype == 1:
            if len(frame) < 14 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
        elif linktype == 101:
            ip = frame
        else:
            continue
        if len(ip) < 20 or ip[0] >> 4 != 4:
            continue
        ihl = (ip[0] & 0x0F) * 4
        total = int.from_bytes(ip[2:4], "big")
        body = ip[ihl:total]
        proto = ip[9]
        src, dst = IPv4Address(ip[12:16]), IPv4Address(ip[16:20])
        t = sec + frac * unit
        if proto == 17 and len(body) >= 8:
            sport, dport = struct.unpack("!HH", body[:4])
            yield Packet(t, src, dst, proto, body[8:], sport, dport)
        else:
            yield Packet(t, src, dst, proto, body)


def rsvp_messages(path: Path | str) -> Iterator[tuple[Packet, Message]]:
    for p in packets(path):
        if p.proto == 46:
            try:
                yield p, rsvp_decode(p.payload)
            except DecodeError:
                continue


def qe_session_ids(msg: Message) -> dict[IPv4Address, bytes]:
    """Router ID → session ID of each QE subobject of the message's EXPLICIT_ROUTE."""
    out: dict[IPv4Address, bytes] = {}
    route = msg.get(O.ExplicitRoute)
    last: IPv4Address | None = None
    for s in route.subobjects if route else ():
        if isinstance(s, ero.Unnumbered):
            last = s.router_id
        elif isinstance(s, ero.Ipv4Prefix):
            last = s.address
        elif isinstance(s, ero.QeSubobject) and last is not None:
            out[last] = s.session_id
    return out


def etsi_replies(path: Path | str, proxy_port: int = etsi.PORT) -> Iterator[tuple[Packet, object]]:
    """ETSI 004 replies (proxy → node) in a capture of a node-to-proxy domain."""
    for p in packets(path):
        if p.proto == 17 and p.sport == proxy_port:
            try:
                yield p, etsi.decode(p.payload)
            except etsi.DecodeError:
                continue


def closed_handles(path: Path | str, proxy_port: int = etsi.PORT) -> list[tuple[float, bytes]]:
    """(time, key_handle) of every QKD_CLOSE request (node → proxy) in the capture."""
    out = []
    for p in packets(path):
        if p.proto == 17 and p.dport == proxy_port:
            try:
                m = etsi.decode(p.payload)
            except etsi.DecodeError:
                continue
            if isinstance(m, etsi.Close):
                out.append((p.t, m.key_handle))
    return out


def delivered_keys(path: Path | str) -> list[tuple[float, IPv4Address, int, bytes]]:
    """(time, node, index, key) of every successful QKD_GET_KEY reply in the capture: the
    keys the proxy delivered to its node (the ETSI 004 interface carries them in clear
    in this testbed, as the paper's did)."""
    out = []
    for p, m in etsi_replies(path):
        if isinstance(m, etsi.GetKeyReply) and int(m.status) == 0 and m.key:
            out.append((p.t, p.dst, m.index, m.key))
    return out


def opened_handles(path: Path | str) -> list[tuple[float, IPv4Address, bytes]]:
    """(time, node, key_handle) of every successful QKD_OPEN reply in the capture."""
    out = []
    for p, m in etsi_replies(path):
        if isinstance(m, etsi.OpenReply) and int(m.status) == 0:
            out.append((p.t, p.dst, m.key_handle))
    return out
