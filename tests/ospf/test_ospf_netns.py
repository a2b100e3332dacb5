"""Our OSPF-TE daemons in network namespaces: the paper's five nodes on 10.1.1.0/24
(topologies/paper.yaml brought up by compose's namespace builder, prefix ``op``; only the
five node agents run, with OSPF-TE and the CLI)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from compose.netns import NetnsTestbed
from tests.support import tshark
from tests.support.netns_util import tshark_fields, wait_for

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "topologies" / "paper.yaml"
NODES = ["tn1", "tn2", "tn3", "tn4", "tn5"]
#: OSPF-TE and the CLI only: no RSVP, no QE service (no PCE or proxies run here)
OSPF_ONLY = ["--ospf-only"]

pytestmark = [pytest.mark.netns, pytest.mark.slow]


@pytest.fixture
def lan(testbed_factory: Any) -> NetnsTestbed:
    tb: NetnsTestbed = testbed_factory(PAPER, prefix="op", start_daemons=False)
    return tb


def capture(tb: NetnsTestbed, host: str, pcap: Path) -> None:
    """OSPF on the host's control interface into ``pcap`` until the testbed goes down."""
    tshark.tcpdump(tb, host, ["-i", "ctrl", "ip proto 89"], pcap)


def cli_json(lan: NetnsTestbed, host: str, cmd: str) -> Any:
    return json.loads(lan.cli(host, cmd + " json"))


def lsdb_digest(lan: NetnsTestbed, host: str) -> set[tuple[str, ...]]:
    db = cli_json(lan, host, "show ip ospf database")
    out: set[tuple[str, ...]] = set()
    for sec, entries in db["areas"]["0.0.0.0"].items():
        for e in entries:
            out.add((sec, e["lsId"], e["advertisedRouter"], e["sequenceNumber"], e["checksum"]))
    return out


def test_paper_nodes_full_dr_bdr_identical_lsdbs(lan: NetnsTestbed, tmp_path: Path) -> None:
    pcap = tmp_path / "ctrl.pcap"
    for n in NODES:
        assert lan.start(n, extra_args=OSPF_ONLY), n
    capture(lan, "tn1", pcap)

    def full() -> bool:
        for n in NODES:
            nb = cli_json(lan, n, "show ip ospf neighbor")["neighbors"]
            if len(nb) != 4:
                return False
            for rid, (e,) in nb.items():
                adj = n in ("tn4", "tn5") or rid in ("10.1.1.4", "10.1.1.5")
                if e["nbrState"] != ("Full" if adj else "2-Way"):
                    return False
        return True

    wait_for(full, 40, "all adjacencies")

    diff: list[Any] = []

    def synced() -> bool:
        ds = {n: lsdb_digest(lan, n) for n in NODES}
        every = set().union(*ds.values())
        diff[:] = [(k, [n for n in NODES if k in ds[n]]) for k in sorted(every)]
        diff[:] = [d for d in diff if len(d[1]) != len(NODES)]
        return not diff

    wait_for(synced, 30, "identical LSDBs", lambda: diff)
    assert not diff
    # DR and BDR: equal priorities, highest router IDs
    for n in NODES:
        i = cli_json(lan, n, "show ip ospf interface")["interfaces"]["ctrl"]
        assert (i["drAddress"], i["bdrAddress"]) == ("10.1.1.5", "10.1.1.4")
        assert i["counters"]["bad_checksum"] == 0 and i["counters"]["malformed"] == 0
    db = lsdb_digest(lan, "tn3")
    secs = sorted({d[0] for d in db})
    assert secs == ["networkLinkStates", "opaqueAreaLinkStates", "routerLinkStates"]
    # RI LSAs: tn1 and tn5 QE capable (0x12000000), the others TE only
    opq = cli_json(lan, "tn3", "show ip ospf database opaque-area")
    ri = {
        e["advertisedRouter"]: e["routerInformation"]
        for e in opq["areas"]["0.0.0.0"]["opaqueAreaLinkStates"]
        if e["opaqueType"] == 4
    }
    assert {r: v["tlvs"][0]["informationalCapabilities"] for r, v in ri.items()} == {
        "10.1.1.1": "0x12000000",
        "10.1.1.2": "0x10000000",
        "10.1.1.3": "0x10000000",
        "10.1.1.4": "0x10000000",
        "10.1.1.5": "0x12000000",
    }
    # TE LSAs: one per TE link end (10 ends) plus one Router Address LSA per node
    te = [e for e in opq["areas"]["0.0.0.0"]["opaqueAreaLinkStates"] if e["opaqueType"] == 1]
    links = [t["link"] for e in te for t in e["trafficEngineering"] if "link" in t]
    assert len(links) == 10 and len(te) == 15
    l12 = next(
        lk
        for e in te
        for t in e["trafficEngineering"]
        if "link" in (lk := t) and e["advertisedRouter"] == "10.1.1.1"
    )["link"]
    assert l12["linkId"] == "10.1.1.2" and l12["localInterfaceId"] == 1
    assert l12["remoteInterfaceId"] == 2 and l12["teMetric"] == 10
    assert l12["switchingCapability"] == "LSC" and l12["availableLambdas"] == list(range(1, 9))
    # routes: the control LAN directly attached; tn1's qa and tn5's qb stubs via the LAN
    wait_for(
        lambda: len(cli_json(lan, "tn3", "show ip ospf route")) == 3, 20, "three routes at tn3"
    )
    rt = cli_json(lan, "tn3", "show ip ospf route")
    assert rt["10.1.1.0/24"]["nexthops"][0]["directlyAttachedTo"] == "ctrl"
    assert rt["10.2.1.0/24"]["nexthops"][0]["ip"] == "10.1.1.1"
    assert rt["10.2.2.0/24"]["nexthops"][0]["ip"] == "10.1.1.5"
    # text forms work too
    assert "Full/DR" in lan.cli("tn1", "show ip ospf neighbor")
    time.sleep(1)
    if shutil.which("tshark"):
        out = tshark_fields(pcap, "_ws.malformed || _ws.expert.severity >= 6291456", "frame.number")
        assert out == []
        count = tshark_fields(pcap, "ospf", "frame.number")
        assert len(count) > 20


def test_set_link_resources_reoriginates_te_lsa(lan: NetnsTestbed, tmp_path: Path) -> None:
    """A running node changes a link's wavelengths (what RSVP will do) through the API;
    checked here through a second agent in-process is not possible, so the CLI shows the
    LSDB of another node picking up the new TE LSA."""
    # two nodes suffice: tn1 and tn2
    script = tmp_path / "agent.py"
    script.write_text(
        "import asyncio, sys\n"
        "from gmpls.topology import load\n"
        "from gmpls.logfmt import setup_logging\n"
        "from node_agent.daemon import NodeDaemon\n"
        "async def main():\n"
        f"    setup_logging({str(tmp_path / 'tn1.log')!r})\n"
        f"    d = NodeDaemon(load({str(PAPER)!r}), 'tn1', ospf_only=True)\n"
        "    await d.start()\n"
        "    await asyncio.sleep(8)\n"
        "    d.ospf.set_link_resources(1, available_lambdas=[2, 3, 5], max_reservable=1e9)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    with open(tmp_path / "tn1.agent.out", "wb") as out:
        lan.popen("tn1", [sys.executable, str(script)], stdout=out, stderr=subprocess.STDOUT)
    assert lan.start("tn2", extra_args=OSPF_ONLY)

    def link_lambdas() -> list[int]:
        opq = cli_json(lan, "tn2", "show ip ospf database opaque-area")
        for e in opq["areas"]["0.0.0.0"]["opaqueAreaLinkStates"]:
            if e["advertisedRouter"] == "10.1.1.1" and e["lsId"] == "1.0.0.1":
                return list(e["trafficEngineering"][0]["link"]["availableLambdas"])
        return []

    wait_for(lambda: link_lambdas() == list(range(1, 9)), 30, "tn1's TE LSA at tn2")
    wait_for(lambda: link_lambdas() == [2, 3, 5], 30, "the re-originated TE LSA")
