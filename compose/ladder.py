"""The message ladder of Fig. 6, read back from a capture by tshark.

The demo captures the control LAN and asks tshark, the independent decoder, what crossed
it: one row per PCEP and RSVP message (and the OSPF LS Updates carrying the RI LSA when
asked), with the time relative to the first PCReq. Reading the ladder from the wire rather
than from the daemons' own logs is the point: it shows what a Wireshark user would see.
The QKD domains' datagrams (ETSI 004, sync, IDQ3P) are read the same way and named by the
project's codecs (:func:`decode_qkd`), for the drawn ladder (:mod:`compose.ladder_svg`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from gmpls.errors import DecodeError
from gmpls.qkd import etsi004, idq3p, sync
from gmpls.qkd.message import decode_body
from gmpls.wire import Reader

PCEP_MESSAGES = {
    1: "Open",
    2: "Keepalive",
    3: "PCReq",
    4: "PCRep",
    5: "PCNtf",
    6: "PCErr",
    7: "Close",
    10: "PCRpt",
    11: "PCUpd",
    12: "PCInitiate",
}
RSVP_MESSAGES = {
    1: "Path",
    2: "Resv",
    3: "PathErr",
    4: "ResvErr",
    5: "PathTear",
    6: "ResvTear",
    7: "ResvConf",
    20: "Hello",
    21: "Notify",
}
OSPF_MESSAGES = {1: "Hello", 2: "DB Description", 3: "LS Request", 4: "LS Update", 5: "LS Ack"}

_FIELDS = (
    "frame.number",
    "frame.time_epoch",
    "ip.src",
    "ip.dst",
    "pcep.msg",
    "rsvp.msg",
    "ospf.msg",
    "_ws.malformed",
    "_ws.expert.severity",
    "ospf.ri.options",
)


@dataclass(frozen=True, slots=True)
class Rung:
    t_ms: float
    src: str
    dst: str
    proto: str
    msg: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Decoded:
    """Every PCEP/RSVP/OSPF message tshark found, plus the frames it called malformed."""

    rows: list[tuple[float, Rung]]
    malformed: list[int]


def tshark_path() -> str:
    path = shutil.which("tshark")
    if path is None:
        raise RuntimeError("tshark is not installed (make setup installs it)")
    return path


def decode(pcap: Path | str) -> Decoded:
    """Run tshark over a capture; one entry per control-plane message, in capture order."""
    cmd = [
        tshark_path(),
        "-n",
        "-r",
        str(pcap),
        "-Y",
        "pcep || rsvp || ospf || _ws.malformed",
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]
    for f in _FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout
    rows: list[tuple[float, Rung]] = []
    malformed: list[int] = []
    for line in out.splitlines():
        cols = (line.split("\t") + [""] * len(_FIELDS))[: len(_FIELDS)]
        num, epoch, src, dst, pcep, rsvp, ospf, bad, _sev, ri = cols
        if bad:
            malformed.append(int(num))
        for proto, values, names in (
            ("PCEP", pcep, PCEP_MESSAGES),
            ("RSVP", rsvp, RSVP_MESSAGES),
            ("OSPF", ospf, OSPF_MESSAGES),
        ):
            # one TCP segment may carry several PCEP messages: one rung each
            for v in filter(None, values.split(",")):
                name = names.get(int(v), f"type {v}")
                if proto == "OSPF" and name == "LS Update" and ri:
                    name = "LS Update (RI)"  # carries a Router Information LSA (RFC 7770)
                rows.append(
                    (
                        float(epoch),
                        Rung(
                            0.0,
                            src.split(",")[0],
                            dst.split(",")[0],
                            proto,
                            name,
                        ),
                    )
                )
    return Decoded(rows, malformed)


def ladder(
    pcap: Path | str,
    include: tuple[str, ...] = (
        "PCReq",
        "PCRep",
        "Path",
        "Resv",
        "PathErr",
        "ResvErr",
        "PathTear",
        "ResvTear",
        "PCErr",
    ),
    *,
    ri_from: str | None = None,
    decoded: Decoded | None = None,
) -> list[Rung]:
    """The rungs of Fig. 6: the service's PCEP and RSVP messages, timed from the first PCReq.

    ``ri_from`` (a control address, e.g. the QE destination's) puts first, as Fig. 6 does,
    the last OSPF LS Update from that address carrying a Router Information LSA before
    the PCReq (negative time). ``decoded``: a :func:`decode` result to reuse."""
    d = decoded if decoded is not None else decode(pcap)
    picked = [(t, r) for t, r in d.rows if r.msg in include]
    if not picked:
        return []
    t0 = next((t for t, r in picked if r.msg == "PCReq"), picked[0][0])
    out = [
        Rung(round((t - t0) * 1000, 3), r.src, r.dst, r.proto, r.msg) for t, r in picked if t >= t0
    ]
    if ri_from is not None:
        ri = [(t, r) for t, r in d.rows if r.msg == "LS Update (RI)" and r.src == ri_from]
        before = [(t, r) for t, r in ri if t < t0]
        if before:
            t, r = before[-1]
            out.insert(0, Rung(round((t - t0) * 1000, 3), r.src, r.dst, r.proto, r.msg))
    return out


def setup_ms(rungs: list[Rung], head: str) -> float | None:
    """From the first PCReq to the last Resv of the ladder, the one that reached ``head``
    (the service is up then): the paper's "around 300 ms" figure."""
    starts = [r.t_ms for r in rungs if r.msg == "PCReq"]
    if not starts:
        return None
    ends = [r.t_ms for r in rungs if r.msg == "Resv" and r.dst == head and r.t_ms >= starts[0]]
    if not ends:
        return None
    return round(ends[0] - starts[0], 3)


def format_ladder(rungs: list[Rung]) -> str:
    lines = [f"{'t (ms)':>9}  {'source':<15} {'destination':<15} {'proto':<5} message"]
    for r in rungs:
        arrow = f"{r.src:<15} {r.dst:<15}"
        lines.append(f"{r.t_ms:9.3f}  {arrow} {r.proto:<5} {r.msg}")
    return "\n".join(lines)


def to_json(rungs: list[Rung]) -> str:
    return json.dumps([r.as_dict() for r in rungs])


# --- the QKD domains: ETSI 004, the proxies' sync channel, IDQ3P -------------------------
#
# tshark (without the project's Wireshark plugin) sees these as bare UDP; it gives the time,
# the addresses, the ports and the payload, and the project's own codecs name each message.
# Only names, status codes and counts come out: never key bytes.

_UDP_FIELDS = ("frame.time_epoch", "ip.src", "ip.dst", "udp.srcport", "udp.dstport", "udp.payload")


def _etsi_label(data: bytes) -> str:
    try:
        msg = etsi004.decode(data)
    except DecodeError:
        head = etsi004.peek_header(data)
        return f"type {head[0]:#04x} (malformed)" if head else "malformed"
    name = etsi004.MsgType(msg.TYPE).name
    status = getattr(msg, "status", None)
    return name if status is None else f"{name} {etsi004.Status(status).name}"


def _sync_label(data: bytes) -> str:
    """The type (and result) of a sync frame, read without its MAC key: the header and body
    are clear text, only the HMAC at the end is unknown here."""
    if len(data) < sync.HEADER_LEN + sync.MAC_LEN or data[:2] != sync.MAGIC:
        return "malformed"
    mtype = data[3]
    try:
        name = sync.SyncType(mtype).name
        body = Reader(data[sync.HEADER_LEN : -sync.MAC_LEN], "sync")
        msg = decode_body(sync.REGISTRY, mtype, body)
    except (ValueError, DecodeError):
        return f"type {mtype} (malformed)"
    result = getattr(msg, "result", None)
    return name if result is None else f"{name} {sync.Result(result).name}"


def _idq_label(data: bytes) -> str:
    try:
        msg = idq3p.decode(data)
    except DecodeError:
        return "malformed"
    name = idq3p.MsgType(msg.TYPE).name
    keys = getattr(msg, "keys", None)
    if keys is not None:
        return f"{name} ({len(keys)} keys)"
    status = getattr(msg, "status", None)
    return name if status is None else f"{name} {idq3p.Status(status).name}"


#: UDP port -> (protocol as the ladder names it, what names a payload)
QKD_PORTS = {
    etsi004.PORT: ("ETSI", _etsi_label),
    sync.PORT: ("sync", _sync_label),
    idq3p.PORT: ("IDQ3P", _idq_label),
}


def decode_qkd(pcap: Path | str) -> list[tuple[float, Rung]]:
    """Every ETSI 004, sync and IDQ3P datagram of a capture (IP fragments reassembled;
    ICMP errors quoting one left out), named by the project's codecs."""
    cmd = [tshark_path(), "-n", "-r", str(pcap), "-Y", "udp && !icmp", "-T", "fields"]
    cmd += ["-E", "separator=\t", "-E", "occurrence=f"]
    for f in _UDP_FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout
    rows: list[tuple[float, Rung]] = []
    for line in out.splitlines():
        cols = (line.split("\t") + [""] * len(_UDP_FIELDS))[: len(_UDP_FIELDS)]
        epoch, src, dst, sport, dport, payload = cols
        port = next((p for p in (int(dport or 0), int(sport or 0)) if p in QKD_PORTS), None)
        if port is None:
            continue
        proto, label = QKD_PORTS[port]
        rows.append((float(epoch), Rung(0.0, src, dst, proto, label(bytes.fromhex(payload)))))
    return rows


def first_pcreq(decoded: Decoded) -> float | None:
    """The capture time (epoch seconds) of the first PCReq: time zero of the ladder."""
    return next((t for t, r in decoded.rows if r.msg == "PCReq"), None)


# --- the client's request on a node's telnet CLI -------------------------------------------

_CLI_FIELDS = ("frame.time_epoch", "ip.src", "ip.dst", "tcp.srcport", "tcp.dstport", "tcp.payload")
_STATE = re.compile(r'"state":\s*"([a-z-]+)"')


def decode_cli(pcap: Path | str, ports: Iterable[int] = (23,)) -> list[tuple[float, Rung]]:
    """The QE service commands typed on a node's telnet CLI (``qe-service create|delete``,
    the command's first words) and the first segment of each answer (with the service's
    state when it shows): what starts and ends the workflow. Other commands are left out."""
    ports = sorted(set(ports))
    if not ports:
        return []
    any_port = " || ".join(f"tcp.port == {p}" for p in ports)
    cmd = [tshark_path(), "-n", "-r", str(pcap), "-Y", f"tcp.len > 0 && ({any_port})"]
    cmd += ["-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"]
    for f in _CLI_FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout
    rows: list[tuple[float, Rung]] = []
    waiting: set[tuple[str, str]] = set()  # (client, node) with a command not answered yet
    for line in out.splitlines():
        cols = (line.split("\t") + [""] * len(_CLI_FIELDS))[: len(_CLI_FIELDS)]
        epoch, src, dst, _sport, dport, payload = cols
        text = bytes.fromhex(payload).decode("utf-8", "replace").strip()
        if int(dport or 0) in ports and text.startswith("qe-service "):
            words = text.split()
            msg = " ".join(words[:4] if words[1] == "create" else words[:3])
            rows.append((float(epoch), Rung(0.0, src, dst, "CLI", msg)))
            waiting.add((src, dst))
        elif (dst, src) in waiting:
            waiting.discard((dst, src))
            state = _STATE.search(text)
            msg = f"reply: {state.group(1)}" if state else "reply"
            rows.append((float(epoch), Rung(0.0, src, dst, "CLI", msg)))
    return rows
