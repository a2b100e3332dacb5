"""Interop: our OSPF-TE speakers beside FRR ospfd (zebra + ospfd, opaque, router-info,
mpls-te, link-params) and BIRD 2 on one LAN: tests/ospf/interop.yaml brought up by
compose's namespace builder (prefix ``oi``), which also launches FRR and BIRD.

tn1 (priority 10) becomes DR, BIRD (highest router ID of the rest) BDR; everyone is Full
with both, tn2 and FRR are 2-Way with each other. Checked: adjacencies; FRR's opaque-area
database lists our RI LSAs (0x12: TE + QE) and TE LSAs and decodes their TLVs; our LSDB
holds FRR's TE and RI LSAs (FRR's Router Address and Link TLVs in one LSA); all four
LSDBs are identical; our routing table agrees with FRR's; stopping BIRD takes its
adjacency down after the dead interval and its stub route disappears everywhere; tshark
finds no malformed OSPF packet in the capture. And FRR floods and holds our QKD link TE
LSAs unchanged.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from compose import daemons
from compose.netns import NetnsTestbed
from gmpls.ospf.qkdlink import QkdLinkTlv, qkd_lsa_id
from tests.support import tshark
from tests.support.frr import frr_nbrs, lsdb_frr, lsdb_ours, ours_json, ours_nbrs, vtysh, vtysh_json
from tests.support.netns_util import tshark_fields, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.netns, pytest.mark.slow]

TOPOLOGY = Path(__file__).resolve().parent / "interop.yaml"
ROOT = Path(__file__).resolve().parents[2]
#: FRR's TE link on the control LAN, with parameters our decoder must read back
FRR_LINK_PARAMS = [
    "metric 20",
    "max-bw 1.25e+09",
    "max-rsv-bw 1.25e+09",
    "unrsv-bw 0 1.25e+09",
    "admin-grp 0x1",
]


@pytest.fixture
def lab(testbed_factory: Any) -> NetnsTestbed:
    """The lab of tests/ospf/interop.yaml, network only (prefix ``oi``)."""
    for tool in ("tshark", "tcpdump", "bird", "birdc", "vtysh"):
        assert shutil.which(tool), f"{tool} is required (make setup installs it)"
    frr = functools.partial(daemons.frr_config, link_params=FRR_LINK_PARAMS)
    tb: NetnsTestbed = testbed_factory(
        TOPOLOGY, prefix="oi", start_daemons=False, config_generators={"frr": frr}
    )
    return tb


def start_all(tb: NetnsTestbed) -> None:
    """Our node agents with OSPF-TE and the CLI only (no RSVP, no QE service), FRR, BIRD."""
    for h in ("tn1", "tn2"):
        assert tb.start(h, extra_args=["--ospf-only"]), h
    for h in ("fr1", "bd1"):
        assert tb.start(h), h


def birdc(tb: NetnsTestbed, *cmd: str) -> str:
    ctl = tb.run_dir / "bird-bd1" / "bird.ctl"
    return subprocess.run(
        ["birdc", "-s", str(ctl), *cmd], capture_output=True, text=True, check=True, timeout=20
    ).stdout


def bird_nbrs(tb: NetnsTestbed) -> dict[str, str]:
    out = {}
    for line in birdc(tb, "show", "ospf", "neighbors").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].count(".") == 3:
            out[parts[0]] = parts[2].split("/")[0]
    return out


def lsdb_bird(tb: NetnsTestbed) -> set[tuple[str, str, str, str]]:
    out = set()
    for line in birdc(tb, "show", "ospf", "lsadb").splitlines():
        p = line.split()
        if len(p) == 6 and p[0].startswith("000"):
            out.add((str(int(p[0], 16)), p[1], p[2], f"{p[3].lower()}/{p[5]}"))
    return out


def test_ours_frr_bird_on_one_lan(lab: NetnsTestbed, tmp_path: Path) -> None:
    tb = lab
    pcap = tmp_path / "ctrl.pcap"
    tshark.tcpdump(tb, "tn2", ["-i", "ctrl", "ip proto 89"], pcap)
    start_all(tb)

    want_tn1 = {"10.1.1.2": "Full", "10.1.1.3": "Full", "10.1.1.4": "Full"}
    want_tn2 = {"10.1.1.1": "Full", "10.1.1.3": "2-Way", "10.1.1.4": "Full"}
    want_frr = {"10.1.1.1": "Full", "10.1.1.2": "2-Way", "10.1.1.4": "Full"}
    want_bird = {"10.1.1.1": "Full", "10.1.1.2": "Full", "10.1.1.3": "Full"}

    def adjacencies() -> Any:
        got = (ours_nbrs(tb, "tn1"), ours_nbrs(tb, "tn2"), frr_nbrs(tb), bird_nbrs(tb))
        return got == (want_tn1, want_tn2, want_frr, want_bird) or got

    wait_for(adjacencies, 60, "all adjacencies")
    i1 = ours_json(tb, "tn1", "show ip ospf interface")["interfaces"]["ctrl"]
    assert (i1["state"], i1["drAddress"], i1["bdrAddress"]) == ("DR", "10.1.1.1", "10.1.1.4")

    # identical LSDBs everywhere (BIRD stores and floods opaque LSAs too)
    def synced() -> Any:
        dbs = [lsdb_ours(tb, "tn1"), lsdb_ours(tb, "tn2"), lsdb_frr(tb), lsdb_bird(tb)]
        return (all(d == dbs[0] for d in dbs) and len(dbs[0]) == 13) or dbs

    wait_for(synced, 40, "identical LSDBs")

    # FRR took the topology's SPF throttling (timers throttle spf 50 200 5000)
    frr_ospf = vtysh_json(tb, "show ip ospf")
    spf = (frr_ospf["spfScheduleDelayMsecs"], frr_ospf["holdtimeMinMsecs"])
    assert (*spf, frr_ospf["holdtimeMaxMsecs"]) == (50, 200, 5000)

    # FRR lists our RI LSAs with TE+QE (first octet 0x12) and our TE LSAs
    opq = vtysh_json(tb, "show ip ospf database opaque-area")
    lsas = opq["areaLocalOpaqueLsa"]["areas"]["0.0.0.0"]
    ri = {e["advertisingRouter"]: e["opaqueData"] for e in lsas if e["linkStateId"] == "4.0.0.0"}
    assert ri["10.1.1.1"] == "0001000412000000"
    assert ri["10.1.1.2"] == "0001000412000000"
    assert ri["10.1.1.3"][:8] == "00010004" and int(ri["10.1.1.3"][8:10], 16) & 0x10
    te_ours = sorted(
        (e["advertisingRouter"], e["linkStateId"])
        for e in lsas
        if e["opaqueType"] == "Traffic Engineering LSA" and e["advertisingRouter"] != "10.1.1.3"
    )
    assert te_ours == [
        ("10.1.1.1", "1.0.0.0"),
        ("10.1.1.1", "1.0.0.1"),
        ("10.1.1.2", "1.0.0.0"),
        ("10.1.1.2", "1.0.0.2"),
    ]
    # FRR's own decoding of our TE Link TLV (text form)
    text = vtysh(tb, "show ip ospf database opaque-area adv-router 10.1.1.1")
    assert "Opaque-Type 4" in text or "Router Information" in text
    assert "Link-ID: 10.1.1.2" in text or "Link ID: 10.1.1.2" in text, text
    assert "Traffic Engineering Metric: 10" in text, text

    # our LSDB holds FRR's TE and RI LSAs, decoded (Router Address + Link in one LSA)
    ours = ours_json(tb, "tn1", "show ip ospf database opaque-area")["areas"]["0.0.0.0"]
    frr_lsas = [e for e in ours["opaqueAreaLinkStates"] if e["advertisedRouter"] == "10.1.1.3"]
    frr_ri = next(e for e in frr_lsas if e["opaqueType"] == 4)
    assert frr_ri["routerInformation"]["teCapable"] is True
    assert frr_ri["routerInformation"]["qeCapable"] is False
    frr_te = next(e for e in frr_lsas if e["opaqueType"] == 1)
    tlvs = frr_te["trafficEngineering"]
    assert tlvs[0] == {"routerAddress": "10.1.1.3"}
    link = tlvs[1]["link"]
    assert link["linkType"] == "Multiaccess" and link["linkId"] == "10.1.1.1"
    assert link["teMetric"] == 20 and link["maxBandwidth"] == pytest.approx(1.25e9)
    assert link["localAddresses"] == ["10.1.1.3"] and link["adminGroup"] == "0x00000001"

    # routing tables agree (network routes; FRR also lists router routes, "R ")
    def routes_agree() -> Any:
        frr = {
            p: r for p, r in vtysh_json(tb, "show ip ospf route").items() if r["routeType"] == "N"
        }
        ours = ours_json(tb, "tn2", "show ip ospf route")
        if set(frr) != set(ours) or len(ours) != 5:
            return (sorted(frr), sorted(ours))
        for p in ours:
            hop_f = {h["ip"].strip() or "direct" for h in frr[p]["nexthops"]}
            hop_o = {h["ip"].strip() or "direct" for h in ours[p]["nexthops"]}
            # a prefix attached to one of the two is direct there and via it at the other
            if p == "10.30.0.0/24":
                ok = hop_f == {"direct"} and hop_o == {"10.1.1.3"}
            elif p == "10.2.2.0/24":
                ok = hop_o == {"direct"} and hop_f == {"10.1.1.2"}
            else:
                ok = hop_f == hop_o and frr[p]["cost"] == ours[p]["cost"]
            if not ok:
                return (p, frr[p], ours[p])
        return True

    wait_for(routes_agree, 20, "routing tables to agree")
    ours_rt = ours_json(tb, "tn2", "show ip ospf route")
    assert ours_rt["10.40.0.0/24"]["cost"] == 20
    assert ours_rt["10.40.0.0/24"]["nexthops"] == [{"ip": "10.1.1.4", "via": "ctrl"}]

    # stop BIRD: its adjacency goes after the dead interval (4 s), its stub route goes
    t0 = time.monotonic()
    tb.stop("bd1")

    def bird_gone() -> Any:
        a = ours_nbrs(tb, "tn1")
        rt = ours_json(tb, "tn2", "show ip ospf route")
        frr = vtysh_json(tb, "show ip ospf route")
        return ("10.1.1.4" not in a and "10.40.0.0/24" not in rt and "10.40.0.0/24" not in frr) or (
            a,
            sorted(rt),
        )

    wait_for(bird_gone, 30, "BIRD's adjacency and routes to go")
    assert time.monotonic() - t0 >= 3.0  # not before the dead interval
    i2 = ours_json(tb, "tn2", "show ip ospf interface")["interfaces"]["ctrl"]
    wait_for(
        lambda: (
            ours_json(tb, "tn2", "show ip ospf interface")["interfaces"]["ctrl"]["bdrAddress"]
            == "10.1.1.3"
        ),
        20,
        "FRR to become BDR",
    )
    assert i2["counters"]["bad_checksum"] == 0 and i2["counters"]["malformed"] == 0

    # tshark: no malformed OSPF packet in the capture; ours carry no expert warning
    time.sleep(1)
    bad = tshark_fields(pcap, "ospf && _ws.malformed", "frame.number")
    assert bad == []
    warn = tshark_fields(
        pcap,
        "ospf && ip.src in {10.1.1.1, 10.1.1.2} && _ws.expert.severity >= warning",
        "frame.number",
    )
    assert warn == []
    n = tshark_fields(pcap, "ospf", "ip.src")
    assert {"10.1.1.1", "10.1.1.2", "10.1.1.3", "10.1.1.4"} <= set(n)
    json.dumps(n)  # keep the capture summary serialisable for debugging


#: a TE LSA body our decoder rejects: a Link TLV whose Link Type sub-TLV has length 2
#: (RFC 3630 §2.5.1 says 1). Before issue 11 it made us drop the whole LS Update.
BAD_TE_BODY = "000200080001000201000000"


def test_frr_holds_an_lsa_we_cannot_decode_and_we_still_reach_full(
    lab: NetnsTestbed, tmp_path: Path
) -> None:
    """FRR holds a TE LSA whose body our decoder rejects (originated by a stand-in speaker
    in tn2's namespace, router ID 10.1.1.2, which then stops; FRR keeps the LSA). tn1 then
    starts: it must request the LSA from FRR, install it, acknowledge it, and go Full."""
    tb = lab
    assert tb.start("fr1")
    with open(tmp_path / "speaker.err", "w") as err:
        argv = [sys.executable, "-m", "tests.support.ospf_speaker", str(tb.topo_file), "tn2"]
        speaker = tb.popen(
            "tn2",
            [*argv, "--opaque", f"1.0.0.7={BAD_TE_BODY}"],
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip

    def frr_opaque() -> dict[tuple[str, str], Any]:
        opq = vtysh_json(tb, "show ip ospf database opaque-area")
        lsas = opq["areaLocalOpaqueLsa"]["areas"]["0.0.0.0"]
        return {(e["linkStateId"], e["advertisingRouter"]): e for e in lsas}

    bad = ("1.0.0.7", "10.1.1.2")
    wait_for(lambda: bad in frr_opaque() or sorted(frr_opaque()), 40, "FRR to hold the LSA")
    assert frr_opaque()[bad]["opaqueData"].lower() == BAD_TE_BODY
    speaker.terminate()
    speaker.wait(timeout=10)
    assert tb.start("tn1", extra_args=["--ospf-only"])

    def full() -> Any:
        got = (ours_nbrs(tb, "tn1").get("10.1.1.3"), frr_nbrs(tb).get("10.1.1.1"))
        return got == ("Full", "Full") or got

    wait_for(full, 40, "tn1 and FRR to be Full")

    def synced() -> Any:
        ours, frr = lsdb_ours(tb, "tn1"), lsdb_frr(tb)
        return ours == frr or (sorted(ours ^ frr), sorted(ours))

    wait_for(synced, 20, "tn1's LSDB to equal FRR's")
    assert any(k[:3] == ("10", *bad) for k in lsdb_ours(tb, "tn1"))

    # acknowledged: FRR has nothing left to retransmit to tn1
    def frr_rxmt() -> Any:
        n = vtysh_json(tb, "show ip ospf neighbor 10.1.1.1 detail")["10.1.1.1"][0]
        return n["linkStateRetransmissionListCounter"] == 0 or n

    wait_for(frr_rxmt, 20, "FRR's retransmission list for tn1 to empty")
    i1 = ours_json(tb, "tn1", "show ip ospf interface")["interfaces"]["ctrl"]
    assert i1["counters"]["malformed"] == 0 and i1["counters"]["bad_lsa_checksum"] == 0
    # tn1 stores it as it came and says why it cannot use it
    ours = ours_json(tb, "tn1", "show ip ospf database opaque-area")["areas"]["0.0.0.0"]
    (e,) = [e for e in ours["opaqueAreaLinkStates"] if (e["lsId"], e["advertisedRouter"]) == bad]
    assert e["data"] == BAD_TE_BODY and "link" in e["malformed"]


# --- QKD link TE LSAs (docs/ospf-te.md#the-qkd-link-tlv) -----------------------------

MIB = 1 << 20
FAR = IPv4Address("10.1.1.2")


def link(stock: int, far: str = "10.1.1.2", name: str = "etsiA-etsiB") -> dict[str, Any]:
    return {
        "far_site": far,
        "name": name,
        "up": True,
        "rate_bps": 2000,
        "stock_bits": stock,
        "buffer_bits": MIB,
        "used_bits": 0,
        "services": 0,
    }


def frr_opaque(tb: NetnsTestbed) -> dict[tuple[str, str], Any]:
    opq = vtysh_json(tb, "show ip ospf database opaque-area")
    lsas = opq["areaLocalOpaqueLsa"]["areas"]["0.0.0.0"]
    return {(e["linkStateId"], e["advertisingRouter"]): e for e in lsas}


def test_frr_floods_and_holds_the_qkd_link_lsas_unchanged(
    lab: NetnsTestbed, tmp_path: Path
) -> None:
    """tn1 (site node of etsiA) and FRR; a stand-in KM status port in etsiA's namespace
    (tests/support/km_standin.py) tells tn1 its site's QKD links. FRR stays Full with tn1
    and holds each QKD link LSA exactly as tn1 originated it (sequence number, checksum,
    body bytes), through a re-origination (stock fallen past the hysteresis threshold)
    and a flush (link gone)."""
    tb = lab
    state = tmp_path / "links.json"
    state.write_text(json.dumps([link(MIB // 2), link(1000, "10.1.1.9", "etsiA-etsiX")]))
    with open(tmp_path / "km.err", "w") as err:
        tb.popen(
            "etsiA",
            [sys.executable, "-m", "tests.support.km_standin", "10.2.1.11", str(state)],
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    assert tb.start("fr1")
    assert tb.start("tn1", extra_args=["--ospf-only"])

    def full() -> Any:
        got = (ours_nbrs(tb, "tn1").get("10.1.1.3"), frr_nbrs(tb).get("10.1.1.1"))
        return got == ("Full", "Full") or got

    wait_for(full, 40, "tn1 and FRR to be Full")
    a, x = (str(qkd_lsa_id(0)), "10.1.1.1"), (str(qkd_lsa_id(1)), "10.1.1.1")

    def held(stock: int) -> Any:
        frr = frr_opaque(tb)
        if a not in frr or x not in frr:
            return sorted(frr)
        want = QkdLinkTlv(IPv4Address("10.1.1.1"), FAR, 2000, stock, MIB, True).encode()
        return frr[a]["opaqueData"].lower() == want.hex() or frr[a]["opaqueData"]

    wait_for(lambda: held(MIB // 2), 30, "FRR to hold tn1's QKD link LSAs")

    def same() -> Any:
        ours = {k for k in lsdb_ours(tb, "tn1") if k[0] == "10"}
        frr = {k for k in lsdb_frr(tb) if k[0] == "10"}
        return ours == frr or sorted(ours ^ frr)

    wait_for(same, 20, "the same opaque LSAs (sequence numbers, checksums) at tn1 and FRR")
    shown = ours_json(tb, "tn1", "show ip ospf qkd-link")
    assert shown["kmReachable"] and shown["links"]["10.1.1.2"]["name"] == "etsiA-etsiB"

    # the stock falls by more than 10 %: re-originated, FRR holds the new instance
    state.write_text(json.dumps([link(MIB // 4), link(1000, "10.1.1.9", "etsiA-etsiX")]))
    wait_for(lambda: held(MIB // 4), 30, "FRR to hold the re-originated LSA")
    wait_for(same, 20, "the same opaque LSAs after the re-origination")
    seq = {k[1]: k[3] for k in lsdb_frr(tb) if k[2] == "10.1.1.1" and k[1] == a[0]}
    assert seq[a[0]].startswith("80000002/"), seq

    # a link the KM no longer reports is flushed: gone from FRR's database too
    state.write_text(json.dumps([link(MIB // 4)]))

    def flushed() -> Any:
        e = frr_opaque(tb).get(x)  # MaxAge until FRR's MaxAge walker removes it
        return e is None or int(e.get("lsaAge", e.get("age", 0))) >= 3600 or e

    wait_for(flushed, 30, "FRR to flush the LSA")
    assert full() is True
    i1 = ours_json(tb, "tn1", "show ip ospf interface")["interfaces"]["ctrl"]
    assert i1["counters"]["malformed"] == 0
