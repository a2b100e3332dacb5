"""The PCE's TED from FRR's LSAs (interop): FRR ospfd with ``mpls-te on`` and
``router-info area`` on the control LAN with the PCE (prefix "pf").

Live: the PCE's ``show ted`` lists both FRR routers as TE nodes once OSPF is FULL.
Recorded: the LS Updates are captured in the PCE's namespace, FRR's opaque LSAs are
decoded from the capture with our codec and fed to a fresh TED offline; it must agree with
the live one. ``tests/pce/data/frr_lsas.hex`` holds such a recording (written by this test
when ``PCE_RECORD_FRR=1``) for ``test_recorded_frr_lsas``, which needs no FRR.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from gmpls.ospf import packet as P
from gmpls.ospf.constants import LsType
from gmpls.ospf.lsa import LSA
from gmpls.ospf.te import TeLSA
from pce.ted import Ted
from tests.support import tshark

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
FRR_IDS = [IPv4Address("10.1.1.21"), IPv4Address("10.1.1.22")]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def opaque_lsas_from_pcap(pcap: Path) -> list[LSA]:
    """FRR's area-scope opaque LSAs in the OSPF packets of a pcap (Linux cooked or
    Ethernet), newest instance of each."""
    data = pcap.read_bytes()
    linktype = int.from_bytes(data[20:24], "little")
    pos = 24
    out: dict[Any, LSA] = {}
    while pos + 16 <= len(data):
        incl = int.from_bytes(data[pos + 8 : pos + 12], "little")
        frame = data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        ip = frame[16:] if linktype == 113 else frame[14:] if linktype == 1 else frame
        if len(ip) < 20 or ip[9] != 89:
            continue
        try:
            pkt = P.decode(ip[(ip[0] & 0x0F) * 4 :])
        except Exception:
            continue
        if not isinstance(pkt.body, P.LSUpdate):
            continue
        for lsa in pkt.body.lsas:
            h = lsa.header
            if h.ls_type == LsType.OPAQUE_AREA and h.adv_router in FRR_IDS:
                old = out.get(lsa.key)
                if old is None or h.seq >= old.header.seq:
                    out[lsa.key] = lsa
    return list(out.values())


def test_recorded_frr_lsas() -> None:
    """FRR 8.4's RI and TE LSAs as recorded on the wire: both routers are TE nodes with
    their router address; FRR's multi-access Link TLVs (numbered, no RFC 4203 local/remote
    identifiers) give no unnumbered TE links."""
    lines = (DATA / "frr_lsas.hex").read_text().split()
    lsas = [LSA.decode(bytes.fromhex(x)) for x in lines]
    assert {lsa.header.adv_router for lsa in lsas} == set(FRR_IDS)
    assert any(isinstance(lsa.body, TeLSA) and lsa.body.links for lsa in lsas)
    ted = Ted()
    ted.load(lsas)
    nodes = ted.nodes()
    assert sorted(nodes) == FRR_IDS
    for rid in FRR_IDS:
        assert nodes[rid].te and not nodes[rid].qe and nodes[rid].router_address == rid
    assert ted.links() == []


@pytest.mark.netns
@pytest.mark.interop
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_pce_ted_from_live_frr(testbed_factory: Callable[..., Any], tmp_path: Path) -> None:
    if not Path("/usr/lib/frr/ospfd").exists():
        pytest.fail("FRR is required for the interop tests (make setup installs it)")
    tb = testbed_factory(DATA / "frr_pce.yaml", prefix="pf", start_daemons=False)
    pcap = tmp_path / "ospf.pcap"
    dump = tshark.tcpdump(tb, "pce", ["-q", "-i", "ctrl", "ip proto 89"], pcap)
    argv = [sys.executable, "-m", "pce", "--topology", str(tb.topo_file), "--host", "pce"]
    with open(tmp_path / "pce.out", "wb") as out:
        pce = tb.popen("pce", [*argv, "--log-file", str(tmp_path / "pce.log")], env=ENV,
                       cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        for h in ("fr1", "fr2"):
            assert tb.start(h), f"FRR on {h} did not start"
        deadline = time.monotonic() + 90
        live: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                live = json.loads(tb.cli("pce", "show ted json", via="client"))
            except Exception:
                live = {}
            if len(live.get("nodes", [])) == 2:
                break
            time.sleep(1)
        assert [n["router_id"] for n in live["nodes"]] == [str(x) for x in FRR_IDS], live
        assert all(n["te_capable"] and not n["qe_capable"] for n in live["nodes"])
        time.sleep(1)
    finally:
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=10)
        pce.terminate()
        pce.wait(timeout=10)
    recorded = opaque_lsas_from_pcap(pcap)
    offline = Ted()
    offline.load(recorded)
    assert sorted(offline.nodes()) == FRR_IDS
    assert {str(r): n.router_address for r, n in offline.nodes().items()} == {
        n["router_id"]: IPv4Address(n["router_address"]) for n in live["nodes"]
    }
    if os.environ.get("PCE_RECORD_FRR"):
        (DATA / "frr_lsas.hex").write_text("\n".join(x.encode().hex() for x in recorded) + "\n")
