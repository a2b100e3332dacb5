"""The two pictures without a testbed: ``qkdnet topo draw`` of the paper topology (Graphviz
lays it out, the SVG parses and names every host, link and metric), the ladder's reading of
QKD datagrams by the project's codecs (tshark over a capture written here; never a key
byte in a label) and the hand-written ladder SVG (every lane and message, escaped)."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from compose import draw, ladder_svg, topogen
from compose import ladder as L
from compose.cli import main
from gmpls.qkd import etsi004, idq3p, sync
from gmpls.topology import Topology, load
from tests.support.pcap import (
    ethernet_frame,
    ipv4_packet,
    tcp_segment,
    udp_datagram,
    write_pcap,
)

PAPER = Path(__file__).resolve().parents[2] / "topologies" / "paper.yaml"
SVG = "{http://www.w3.org/2000/svg}"
KEY = bytes(range(0xA0, 0xC0))  # 32 bytes that must never show


def texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


@pytest.fixture(scope="module")
def paper() -> Topology:
    return load(PAPER)


# --- topo draw ------------------------------------------------------------------------------


def test_channels_collapse_runs() -> None:
    assert draw.channels([1, 2, 3, 7, 9, 10]) == "1-3,7,9-10"
    assert draw.channels([5]) == "5" and draw.channels([]) == ""


def test_dot_quotes_what_it_is_given() -> None:
    assert draw.q('a "b" \\ c\nd') == '"a \\"b\\" \\\\ c\\nd"'


def test_legacy_qkd_link_of_the_paper(paper: Topology) -> None:
    (k,) = draw.qkd_links(paper)
    assert (k.a, k.b, k.a_idq, k.b_idq) == ("etsiA", "etsiB", "idqA", "idqB")
    assert k.rate_bps == 13_700_000


def test_qkd_links_attribute_wins(paper: Topology) -> None:
    """A topology with ``qkd_links`` (the sites model) is drawn from them, not from the
    proxies' ``peer``."""
    link = SimpleNamespace(name="km1-km2", a="km1", b="km2", a_idq="q1", b_idq="q2", rate_bps=2e6)
    fake = cast(Topology, SimpleNamespace(qkd_links=(link,), qkd=paper.qkd))
    (k,) = draw.qkd_links(fake)
    assert (k.name, k.a_idq, k.b_idq, k.rate_bps) == ("km1-km2", "q1", "q2", 2e6)
    assert draw.rate(k.rate_bps) == "2 Mb/s"


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed (make setup)")
def test_topo_draw_paper(tmp_path: Path, paper: Topology, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "paper.svg"
    assert main(["topo", "draw", str(PAPER), "--out", str(out), "--no-live"]) == 0
    assert "13 hosts, 8 domains, 5 TE links, 1 QKD link(s)" in capsys.readouterr().out
    words = " ".join(texts(out.read_text()))
    for h in paper.hosts:
        assert h in words
    for d in paper.domains.values():
        assert f"{d.name} {d.subnet}" in words
    assert words.count("metric 10") == 4 and words.count("metric 30") == 1
    assert words.count("\u03bb 1-8") == 5
    assert "QKD link etsiA-etsiB" in words and "13.7 Mb/s" in words
    assert "LSP" not in words
    # every host address on its domain, as an edge label
    for h in paper.hosts.values():
        for a in h.interfaces.values():
            assert str(a) in words


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed (make setup)")
def test_topo_draw_lsps(paper: Topology) -> None:
    """Rows as ``show mpls lsp json`` gives them: one red arrow per hop, with its lambda."""
    lsp = "10.1.1.1->10.1.1.5#1/1"
    rows: dict[str, list[dict[str, Any]]] = {
        "tn1": [{"lsp": lsp, "tunnel_id": 1, "out_if": 1, "out_lambda": 3, "qe": True}],
        # a transit node does not know the LSP is a QE service's: its ends do
        "tn2": [{"lsp": lsp, "tunnel_id": 1, "out_if": 1, "out_lambda": 3, "qe": False}],
        "tn5": [{"lsp": lsp, "tunnel_id": 1, "out_if": None, "out_lambda": None, "qe": True}],
    }
    dot = draw.dot_source(paper, rows)
    assert dot.count("LSP 1 \u03bb3 QE") == 2
    assert '"h:tn1" -> "h:tn2" [label="LSP 1' in dot and '"h:tn2" -> "h:tn3" [label="LSP 1' in dot
    words = texts(draw.to_svg(dot))
    assert words.count("LSP 1 \u03bb3 QE") == 2


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed (make setup)")
def test_topo_draw_a_grid(tmp_path: Path) -> None:
    """More routers than fit a row: neato places them, the control LAN has no lines to
    every host (each box says its address on it), every host and TE link is there."""
    path = tmp_path / "grid.yaml"
    path.write_text(topogen.dump(topogen.generate("grid", 16, qe=True)))
    topo = load(path)
    dot = draw.dot_source(topo)
    assert "layout=neato" in dot and "rank=same" not in dot
    assert f'"d:{topo.control_domain}" ->' not in dot
    words = " ".join(texts(draw.to_svg(dot)))
    for h in topo.hosts:
        assert h in words
    assert words.count("metric 10") == len(topo.te_links) == 24
    assert "ctrl 10.1.1.254" in words  # the client: no router ID, its address in its box


def test_live_without_a_testbed_is_an_error_only_when_asked(paper: Topology) -> None:
    class Nothing:
        label = "testbed"

        @classmethod
        def prefixes_up(cls) -> list[str]:
            return []

    lsps, note = draw.live_lsps(paper, cast(Any, Nothing), required=False)
    assert lsps is None and "no testbed with prefix 'qk' is up" in note
    with pytest.raises(Exception, match="--live"):
        draw.live_lsps(paper, cast(Any, Nothing), required=True)


# --- the ladder: QKD datagrams named by the codecs -------------------------------------------


def _udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    return ethernet_frame(ipv4_packet(src, dst, 17, udp_datagram(src, dst, sport, dport, payload)))


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_decode_qkd_names_every_protocol(tmp_path: Path) -> None:
    handle = bytes(range(64))
    a = sync.SyncCodec(b"s" * 32, "etsiA", "etsiB", epoch=7)
    frames = [
        _udp(
            "10.2.1.1", "10.2.1.11", 40000, etsi004.PORT, etsi004.encode(etsi004.GetKey(1, handle))
        ),
        _udp(
            "10.2.1.11",
            "10.2.1.1",
            etsi004.PORT,
            40000,
            etsi004.encode(etsi004.GetKeyReply(1, etsi004.Status.SUCCESSFUL, 0, KEY)),
        ),
        _udp(
            "10.11.1.11",
            "10.11.1.15",
            sync.PORT,
            sync.PORT,
            a.seal(sync.CreateResp(9, handle, sync.Result.IN_USE)),
        ),
        _udp("10.11.2.1", "10.11.2.2", 40001, idq3p.PORT, idq3p.encode(idq3p.GetNextKey(2, 32, 1))),
        _udp(
            "10.11.2.2",
            "10.11.2.1",
            idq3p.PORT,
            40001,
            idq3p.encode(idq3p.Keys(2, idq3p.Status.OK, 32, (idq3p.Key(5, KEY),))),
        ),
        _udp("10.2.1.1", "10.2.1.11", 40000, etsi004.PORT, b"\x01\x04\x00\x00\x00\x00\x00\x01junk"),
        _udp("10.2.1.1", "10.2.1.11", 40000, 9999, b"not ours"),
    ]
    pcap = tmp_path / "qkd.pcap"
    write_pcap(str(pcap), frames)
    rows = L.decode_qkd(pcap)
    got = [(r.src, r.dst, r.proto, r.msg) for _t, r in rows]
    assert got == [
        ("10.2.1.1", "10.2.1.11", "ETSI", "GET_KEY"),
        ("10.2.1.11", "10.2.1.1", "ETSI", "GET_KEY_REPLY SUCCESSFUL"),
        ("10.11.1.11", "10.11.1.15", "sync", "CREATE_RESP IN_USE"),
        ("10.11.2.1", "10.11.2.2", "IDQ3P", "GET_NEXT_KEY"),
        ("10.11.2.2", "10.11.2.1", "IDQ3P", "KEYS (1 keys)"),
        ("10.2.1.1", "10.2.1.11", "ETSI", "type 0x04 (malformed)"),
    ]
    assert rows == sorted(rows, key=lambda tr: tr[0])


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_decode_cli_keeps_the_qe_service_commands_and_their_answers(tmp_path: Path) -> None:
    talk = [  # (from the client?, text), one telnet session to tn1
        (False, b"tn1# "),
        (True, b"show qe-service json\n"),
        (False, b'{"node": "tn1", "pcep": "up"}'),
        (True, b"qe-service create dst 10.1.1.5 key-length 32 layer 2 wait json\n"),
        (False, b'{\r\n  "services": [{"id": "1", "state": "up"}]}'),
        (True, b"exit\n"),
        (True, b"qe-service delete 1 json\n"),
        (False, b"% no such service"),
    ]
    frames, seq = [], {True: 1, False: 1}
    for mine, text in talk:
        src, dst = ("10.1.1.100", "10.1.1.1") if mine else ("10.1.1.1", "10.1.1.100")
        sport, dport = (40000, 23) if mine else (23, 40000)
        seg = tcp_segment(src, dst, sport, dport, text, seq=seq[mine])
        seq[mine] += len(text)
        frames.append(ethernet_frame(ipv4_packet(src, dst, 6, seg, ttl=64)))
    pcap = tmp_path / "cli.pcap"
    write_pcap(str(pcap), frames)
    got = [(r.src, r.dst, r.proto, r.msg) for _t, r in L.decode_cli(pcap, [23])]
    assert got == [
        ("10.1.1.100", "10.1.1.1", "CLI", "qe-service create dst 10.1.1.5"),
        ("10.1.1.1", "10.1.1.100", "CLI", "reply: up"),
        ("10.1.1.100", "10.1.1.1", "CLI", "qe-service delete 1"),
        ("10.1.1.1", "10.1.1.100", "CLI", "reply"),
    ]
    assert L.decode_cli(pcap, [2323]) == [] and L.decode_cli(pcap, []) == []


# --- the ladder SVG ---------------------------------------------------------------------------

MESSAGES = [
    ("tn1", "pce", "PCEP", "PCReq"),
    ("pce", "tn1", "PCEP", "PCRep"),
    ("tn1", "etsiA", "ETSI", "OPEN"),
    ("etsiA", "etsiB", "sync", "CREATE"),
    ("etsiA", "idqA", "IDQ3P", "GET_NEXT_KEY"),
    ("tn1", "tn2", "RSVP", "Path"),
    ("tn4", "tn5", "RSVP", "Path"),
    ("tn5", "etsiB", "ETSI", 'GET_KEY <&> "odd"'),
    ("etsiB", "idqB", "IDQ3P", "GET_KEY_BY_ID"),
    ("tn5", "224.0.0.5", "OSPF", "LS Update (RI)"),
    ("tn5", "10.9.9.9", "RSVP", "Resv"),
]


def test_the_client_lane_comes_first_when_it_speaks(paper: Topology) -> None:
    rungs = [L.Rung(-1.0, "client", "tn1", "CLI", "qe-service create dst 10.1.1.5")]
    assert ladder_svg.lanes(paper, rungs)[:3] == ["client", "idqA", "etsiA"]


def test_lanes_of_the_paper(paper: Topology) -> None:
    rungs = [L.Rung(float(i), s, d, p, m) for i, (s, d, p, m) in enumerate(MESSAGES)]
    assert ladder_svg.lanes(paper, rungs) == [
        "idqA",
        "etsiA",
        "tn1",
        "pce",
        "tn2",
        "tn3",
        "tn4",
        "tn5",
        "etsiB",
        "idqB",
        "224.0.0.5",
        "10.9.9.9",
    ]
    assert ladder_svg.host_of(paper)["10.11.1.15"] == "etsiB"
    assert ladder_svg.host_of(paper)["224.0.0.5"] == "AllSPFRouters"


def test_ladder_svg_parses_with_every_lane_and_message(paper: Topology) -> None:
    rungs = [L.Rung(i * 1.5, s, d, p, m) for i, (s, d, p, m) in enumerate(MESSAGES)]
    svg = ladder_svg.render(paper, rungs, title="a <title> & more")
    root = ET.fromstring(svg)
    lanes = [g.get("id") for g in root.iter(f"{SVG}g") if g.get("class") == "lane"]
    assert lanes == [f"lane-{h}" for h in ladder_svg.lanes(paper, rungs)]
    msgs = [g for g in root.iter(f"{SVG}g") if g.get("class") == "msg"]
    assert [
        (g.get("data-src"), g.get("data-dst"), g.get("data-proto"), g.get("data-msg")) for g in msgs
    ] == MESSAGES
    assert [g.get("data-t-ms") for g in msgs][:2] == ["0.000", "1.500"]
    words = texts(svg)
    assert "a <title> & more" in words
    assert 'ETSI GET_KEY <&> "odd"' in words and "RSVP Path" in words
    for h in paper.hosts.values():
        if h.kind not in ("client", "host"):  # client hosts send no control message
            assert h.name in words


# --- the pictures in docs/ ---------------------------------------------------------------------

DOCS = PAPER.parents[1] / "docs"
#: every kind of message of the demo's workflow, by protocol (the name without its status)
KINDS = {
    "OSPF": {"LS Update (RI)"},
    "PCEP": {"PCReq", "PCRep"},
    "RSVP": {"Path", "Resv"},
    "ETSI": {"OPEN", "OPEN_REPLY", "CONNECT_NONBLOCK", "CONNECT_NONBLOCK_REPLY", "GET_KEY"}
    | {"GET_KEY_REPLY"},
    "sync": {"CREATE", "CREATE_RESP", "OPENED", "ACK"},
    "IDQ3P": {"GET_NEXT_KEY", "KEYS"},
    "CLI": {"qe-service", "reply:"},
}


def ladder_messages(path: Path) -> list[tuple[str, str, str, str]]:
    """(protocol, message, source, destination) of every arrow of a drawn ladder."""
    root = ET.parse(path).getroot()
    out = []
    for g in root.iter(f"{SVG}g"):
        if g.get("class") == "msg":
            p, m, s, d = (
                g.get(k) or "" for k in ("data-proto", "data-msg", "data-src", "data-dst")
            )
            out.append((p, m, s, d))
    return out


def missing_kinds(msgs: list[tuple[str, str, str, str]]) -> dict[str, set[str]]:
    """The kinds of :data:`KINDS` no arrow shows, by protocol (empty: all there)."""
    seen: dict[str, set[str]] = {}
    for proto, msg, _s, _d in msgs:
        seen.setdefault(proto, set()).add(msg if proto == "OSPF" else msg.split(" ")[0])
    return {p: k - seen.get(p, set()) for p, k in KINDS.items() if k - seen.get(p, set())}


def test_docs_ladder_has_every_host_and_message(paper: Topology) -> None:
    path = DOCS / "paper-ladder.svg"
    root = ET.parse(path).getroot()
    lanes = {g.get("id") for g in root.iter(f"{SVG}g") if g.get("class") == "lane"}
    # every host that takes part in the workflow (the client hosts behind the QE ends
    # send no control message)
    assert lanes == {f"lane-{h.name}" for h in paper.hosts.values() if h.kind != "host"}
    msgs = ladder_messages(path)
    assert missing_kinds(msgs) == {}
    assert not any("malformed" in m for _p, m, _s, _d in msgs)


def test_docs_topology_has_every_host_and_the_lsp(paper: Topology) -> None:
    words = " ".join(texts((DOCS / "paper-topology.svg").read_text()))
    for h in paper.hosts.values():
        assert h.name in words
    assert words.count("LSP 1 \u03bb") == 4 and "QKD link etsiA-etsiB" in words
