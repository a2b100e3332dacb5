"""The optical layer on the paper topology in namespaces (docs/dataplane.md, "Optical layer
and cross-connects"): a veth pair per TE link and lambda between the nodes, the access
ports and client hosts, the transit cross-connects a QE service's LSP installs in the
kernel at tn2, tn3 and tn4 (tc filters, ``show mpls lsp json``) and removes at teardown,
frames put into the head's channel coming out of the tail's without crossing a transit
node's user space, a cross-connect that cannot be installed failing the LSP (24/9), and
nothing left after ``down``. One bring-up (prefix ``xo``) for the whole module."""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compose.netns import leftovers
from gmpls.dataplane.names import channel_ifname
from tests.support import tshark
from tests.support.e2elab import PAPER, Lab, private_index, restore_index, start_lab, stop_lab
from tests.support.netns_util import wait_for

pytestmark = pytest.mark.netns

PREFIX = "xo"
CREATE = "qe-service create dst 10.1.1.5 key-length 32 layer 2 algorithm 10 refresh time 1000"
ETH_P_ALL = 0x0003
TRANSITS = ("tn2", "tn3", "tn4")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("network namespace tests need root")
    run = tmp_path_factory.mktemp("xo-run")
    old = private_index(run)
    try:
        lab = start_lab(PAPER, PREFIX, run)
        try:
            yield lab
        finally:
            stop_lab(lab)
        assert leftovers(PREFIX) == []
    finally:
        restore_index(old)


def _ns(lab: Lab, host: str, *argv: str) -> str:
    r = lab.tb.exec(host, list(argv), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (host, argv, r.stderr)
    return str(r.stdout)


def _links(lab: Lab, host: str) -> dict[str, dict[str, Any]]:
    return {x["ifname"]: x for x in json.loads(_ns(lab, host, "ip", "-j", "link", "show"))}


def _lsps(lab: Lab, node: str) -> list[dict[str, Any]]:
    return list(lab.cli_json(node, "show mpls lsp")["lsps"])


def _ingress(lab: Lab, host: str, ifname: str) -> list[dict[str, Any]]:
    """The tc ingress filters of ``ifname`` (empty when it has no clsact qdisc)."""
    r = lab.tb.exec(
        host,
        ["tc", "-s", "-j", "filter", "show", "dev", ifname, "ingress"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if r.returncode != 0 or not r.stdout.strip():
        return []
    return [f for f in json.loads(r.stdout) if f.get("options", {}).get("actions")]


def _frame(marker: bytes, seq: int) -> bytes:
    """An Ethernet II frame with an IPv4/UDP datagram (checksums right) carrying
    ``marker`` and ``seq``: what tshark decodes in full."""
    payload = marker + struct.pack("!I", seq)
    udp = struct.pack("!HHHH", 40000, 40001, 8 + len(payload), 0) + payload
    hdr = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), seq, 0, 64, 17, 0, bytes(4), bytes(4)
    )
    src, dst = bytes([10, 3, 0, 1]), bytes([10, 3, 0, 2])
    hdr = hdr[:12] + src + dst
    words = struct.unpack("!10H", hdr)
    total = sum(words)
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    hdr = hdr[:10] + struct.pack("!H", ~total & 0xFFFF) + hdr[12:]
    eth = bytes.fromhex("020000000002") + bytes.fromhex("020000000001") + b"\x08\x00"
    return eth + hdr + udp


def _wait_lsp_gone(lab: Lab) -> None:
    wait_for(
        lambda: all(not _lsps(lab, n) for n in ("tn1", *TRANSITS, "tn5")),
        timeout=30,
        what="the LSP gone at every node",
    )


# --- what up builds -----------------------------------------------------------------------


def test_a_veth_pair_per_te_link_and_lambda_and_the_access_ports(lab: Lab) -> None:
    topo = lab.tb.topology
    for node in ("tn1", *TRANSITS, "tn5"):
        links = _links(lab, node)
        want = {channel_ifname(i, lam) for i, lam, _, _ in topo.channels_of(node)}
        assert {n for n in links if n.startswith("te")} == want, node
        for name in want:
            assert links[name]["mtu"] == 1600, (node, name)
            assert links[name]["operstate"] == "UP", (node, name)
    assert len(topo.channels_of("tn2")) == 24  # three TE links of 8 lambdas
    features = _ns(lab, "tn2", "ethtool", "-k", "te2l1")
    for f in ("tcp-segmentation-offload", "generic-segmentation-offload", "tx-checksumming"):
        assert f"{f}: off" in features, f
    # the nodes' access ports carry frames, no address; the client hosts have theirs
    for node, host, dom, addr in (("tn1", "ha", "ea", "10.3.0.1"), ("tn5", "hb", "eb", "10.3.0.2")):
        addrs = json.loads(_ns(lab, node, "ip", "-j", "addr", "show", "dev", "access"))
        assert [a for a in addrs[0]["addr_info"] if a["family"] == "inet"] == [], node
        got = json.loads(_ns(lab, host, "ip", "-j", "-4", "addr", "show", "dev", dom))
        assert [(a["local"], a["prefixlen"]) for a in got[0]["addr_info"]] == [(addr, 24)]
        assert "tx-checksumming: off" in _ns(lab, host, "ethtool", "-k", dom)
    assert not [n for n in _links(lab, "tn3") if n == "access"]  # no access domain


# --- an LSP's cross-connects --------------------------------------------------------------


def test_transit_cross_connects_carry_frames_head_to_tail_in_the_kernel(
    lab: Lab, tmp_path: Path
) -> None:
    lab.cli_json("tn1", f"{CREATE} wait")
    rows = {n: _lsps(lab, n) for n in ("tn1", *TRANSITS, "tn5")}
    (head,) = rows["tn1"]
    assert head["bidirectional"] is True
    assert head["cross_connect"]["role"] == "head"
    fwd_out = channel_ifname(head["out_if"], head["out_lambda"])
    assert head["cross_connect"]["fwd"] == {"in": "access", "out": fwd_out}
    for n in TRANSITS:
        (row,) = rows[n]
        xc = row["cross_connect"]
        f_in = channel_ifname(row["in_if"], row["in_lambda"])
        f_out = channel_ifname(row["out_if"], row["out_lambda"])
        r_in = channel_ifname(row["out_if"], row["out_up_lambda"])
        r_out = channel_ifname(row["in_if"], row["in_up_lambda"])
        assert xc == {
            "role": "transit",
            "installed": "tc",
            "fwd": {"in": f_in, "out": f_out},
            "rev": {"in": r_in, "out": r_out},
        }, n
        assert f"{f_in}>{f_out} {r_in}>{r_out} (tc)" in lab.cli(n, "show mpls lsp")
        for src, dst in ((f_in, f_out), (r_in, r_out)):
            (flt,) = _ingress(lab, n, src)
            (act,) = flt["options"]["actions"]
            assert (act["kind"], act["mirred_action"], act["to_dev"]) == ("mirred", "redirect", dst)
    (tail,) = rows["tn5"]
    fwd_in = channel_ifname(tail["in_if"], tail["in_lambda"])
    assert tail["cross_connect"]["fwd"] == {"in": fwd_in, "out": "access"}
    json.dumps(rows)  # clean JSON all through (it came as JSON)

    # frames written into the head's channel come out of the tail's, through tc alone
    before = {
        n: _ingress(lab, n, rows[n][0]["cross_connect"]["fwd"]["in"])[0]["options"]["actions"][0][
            "stats"
        ]["packets"]
        for n in TRANSITS
    }
    pcap = tmp_path / "tail.pcap"
    dump = tshark.tcpdump(lab.tb, "tn5", ["-i", fwd_in, "-n", "udp"], pcap)
    try:
        rx = lab.tb.socket("tn5", socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        tx = lab.tb.socket("tn1", socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        with rx, tx:
            rx.bind((fwd_in, 0))
            tx.bind((fwd_out, 0))
            marker = os.urandom(8).hex().encode()
            sent = [_frame(marker, i) for i in range(20)]
            for f in sent:
                tx.send(f)
            got = _receive(rx, marker, len(sent))
        assert got == sent  # in order, unchanged
        wait_for(lambda: _pcap_count(pcap) >= len(sent), timeout=20, what="the capture")
    finally:
        dump.terminate()
        dump.wait(timeout=10)
    for n in TRANSITS:
        xc = rows[n][0]["cross_connect"]
        (flt,) = _ingress(lab, n, xc["fwd"]["in"])
        assert flt["options"]["actions"][0]["stats"]["packets"] >= before[n] + len(sent), n
    layers = tshark.layers(pcap)
    assert len(layers) >= len(sent)
    text = tshark.run(pcap, "-V")
    assert "Malformed" not in text and "_ws.malformed" not in text

    # the client hosts reach each other over the service (the ends' data plane)
    wait_for(lambda: lab.tb.ping("ha", "hb", timeout=1.0), timeout=30, what="ping ha -> hb")
    assert lab.tb.ping("hb", "ha", timeout=2.0, count=3)

    # teardown: the cross-connects go from the kernel and from show mpls lsp
    sid = lab.cli_json("tn1", "show qe-service")["services"][0]["id"]
    lab.cli("tn1", f"qe-service delete {sid}")
    _wait_lsp_gone(lab)
    for n in TRANSITS:
        for ch in (
            rows[n][0]["cross_connect"]["fwd"]["in"],
            rows[n][0]["cross_connect"]["rev"]["in"],
        ):
            # the redirect goes; the channel's clsact qdisc stays for the next one
            assert _ingress(lab, n, ch) == [], (n, ch)
        counters = lab.cli_json(n, "show rsvp neighbor")["counters"]
        assert counters["xc_installed"] >= 1 and counters["xc_removed"] >= 1, n


def _receive(rx: socket.socket, marker: bytes, n: int, timeout: float = 20.0) -> list[bytes]:
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([rx], [], [], left)
        if ready:
            data = rx.recv(4096)
            if marker in data:
                out.append(data)
    return out


def _pcap_count(pcap: Path) -> int:
    if not pcap.exists() or pcap.stat().st_size <= 24:
        return 0
    return len(tshark.layers(pcap))


def test_a_cross_connect_that_cannot_be_installed_fails_the_lsp(lab: Lab) -> None:
    """tn3 and tn4 lose every channel between them (deleting one end of a veth pair
    removes both: te3lN at tn3, te2lN at tn4) while OSPF and the PCE still offer the link:
    the next LSP fails with PathErr 24/9 at whichever of the two installs its
    cross-connect first (the Resv reaches tn4 first; both directions of a bidirectional
    LSP use the link), counted and logged. (Every lambda goes: which one the PCE picks
    depends on when its TED last heard of the freed ones.)"""
    _wait_lsp_gone(lab)
    for lam in range(1, 9):
        _ns(lab, "tn3", "ip", "link", "del", f"te3l{lam}")
    lab.cli_json("tn1", CREATE)

    failed: list[str] = []

    def failed_at() -> bool:
        for n in ("tn3", "tn4"):
            if lab.cli_json(n, "show rsvp neighbor")["counters"]["xc_failures"] >= 1:
                failed.append(n)
                return True
        return False

    wait_for(
        failed_at,
        timeout=30,
        what="the cross-connect failure at tn3 or tn4",
        extra=lambda: lab.cli_json("tn1", "show qe-service")["services"],
    )
    node = failed[0]
    log = (lab.run_dir / f"{node}.log").read_text()
    gone = "te3l" if node == "tn3" else "te2l"
    assert "cross-connect failed" in log and f'Cannot find device \\"{gone}' in log
    # the head learns it from the PathErr: its LSP down with 24/9 (the service may then
    # take another path)
    wait_for(
        lambda: any(
            '"action": "LspDown"' in line and '"code": "(24, 9)"' in line
            for line in (lab.run_dir / "tn1.log").read_text().splitlines()
        ),
        timeout=30,
        what="LspDown (24, 9) at tn1",
    )
    for s in lab.cli_json("tn1", "show qe-service")["services"]:
        lab.cli("tn1", f"qe-service delete {s['id']}")
    _wait_lsp_gone(lab)
