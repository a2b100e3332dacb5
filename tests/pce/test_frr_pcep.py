"""FRR's pathd as a stateful PCC of our PCE (interop, RFC 5440 / 8231 / 8408).

Live (root, prefix "pw"): zebra and ``pathd -M pathd_pcep`` in fr1's namespace with one SR
policy (an explicit candidate path), our PCE in its own; pathd connects, the session is
stateful, stays up for over a minute of keepalives (FRR 8.4's pathd used to die 2 ms after
a PCE's Open without TLVs), ``show sr-te pcep session`` says it is up, the policy's report
is in ``show pce lsp``, and tshark finds nothing malformed in the PCEP capture.

Recorded: pathd's Open and reports, as captured (``tests/pce/data/pathd_pcep.hex``,
written by the live test when ``PCE_RECORD_FRR=1``), decoded by our codec and fed to an
LSP database by ``test_recorded_pathd_messages``, which needs no FRR.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from compose import daemons
from gmpls.pcep import constants as C
from gmpls.pcep import messages as M
from gmpls.pcep import tlv as T
from pce.lspdb import LspDb
from tests.support import tshark
from tests.support.netns_util import wait_for

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RECORDED = DATA / "pathd_pcep.hex"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
PATHD = Path("/usr/lib/frr/pathd")
FR1 = "10.1.1.21"

ZEBRA_CONF = f"""hostname fr1
ip router-id {FR1}
ipv6 router-id 2001:db8::21
!
"""
# one SR policy with an explicit candidate path (pathd reports it, PST 1); pathd proposes
# keepalives every 10 s but sends them at the PCE's interval (30 s)
PATHD_CONF = f"""hostname fr1
segment-routing
 traffic-eng
  segment-list SL1
   index 10 mpls label 16010
   index 20 mpls label 16050
  !
  policy color 1 endpoint 10.1.1.5
   name qe1
   binding-sid 4000
   candidate-path preference 100 name CP1 explicit segment-list SL1
  !
  pcep
   pce PCE1
    address ip 10.1.1.200
    source-address ip {FR1}
    timer keep-alive 10 dead-timer 40
   !
   pcc
    peer PCE1 precedence 10
   !
  !
 !
!
"""


def _pcep_from_pcc(pcap: Path) -> list[bytes]:
    """The PCEP messages pathd sent, in order (tshark reassembles the TCP stream)."""
    rows = tshark.run(
        pcap, "-Y", f"pcep && ip.src == {FR1}", "-T", "fields", "-e", "tcp.payload"
    ).split()
    out: list[bytes] = []
    for row in rows:
        out.extend(M.Framer().feed(bytes.fromhex(row.replace(":", ""))))
    return out


def test_recorded_pathd_messages() -> None:
    """pathd 8.4's Open (stateful, PSTs 0 and 1 with SR-PCE-CAPABILITY) and its reports (an
    SR policy: SRP with PST 1, SR-ERO subobjects kept as unknown, Cisco's BSID TLV kept)
    decode, re-encode to the same bytes, and make one SR LSP in the database."""
    raw = [bytes.fromhex(x) for x in RECORDED.read_text().split()]
    msgs = [M.decode_message(b) for b in raw]
    assert [m.encode() for m in msgs] == raw
    opn = msgs[0]
    assert isinstance(opn, M.Open)
    cap = T.find_tlv(opn.open.tlvs, T.StatefulCapabilityTlv)
    assert isinstance(cap, T.StatefulCapabilityTlv) and cap.update
    pst = T.find_tlv(opn.open.tlvs, T.PathSetupTypeCapabilityTlv)
    assert isinstance(pst, T.PathSetupTypeCapabilityTlv) and 1 in pst.psts
    db = LspDb()
    db.session_up(FR1, 0)
    for m in msgs:
        if isinstance(m, M.PCRpt):
            assert db.report(FR1, m, 0) == []
    (lsp,) = db.as_json(0)["lsps"]
    assert (lsp["pst"], lsp["head"], lsp["tail"]) == ("SR", FR1, "10.1.1.5")
    assert lsp["name"] == "qe1-CP1" and lsp["lambdas"] == [] and not db.sync[FR1].syncing


def _start_frr(tb: Any, rt: Path) -> list[subprocess.Popen[Any]]:
    """zebra, then pathd with the PCEP module, in fr1's namespace (foreground, so the
    testbed's teardown stops them)."""
    if rt.exists():
        shutil.rmtree(rt)
    rt.mkdir(parents=True)
    (rt / "zebra.conf").write_text(ZEBRA_CONF)
    (rt / "pathd.conf").write_text(PATHD_CONF)
    shutil.chown(rt, "frr", "frr")
    for p in rt.iterdir():
        shutil.chown(p, "frr", "frr")
    common = ["-z", str(rt / "zserv.api"), "--vty_socket", str(rt), "-A", "127.0.0.1", "-P", "0"]
    procs = []
    for name, extra in (("zebra", []), ("pathd", ["-M", "pathd_pcep"])):
        argv = [f"/usr/lib/frr/{name}", *extra, "-f", str(rt / f"{name}.conf")]
        argv += ["-i", str(rt / f"{name}.pid"), *common, "--log", f"file:{rt / name}.log"]
        out = open(rt / f"{name}.out", "wb")  # noqa: SIM115 - the process owns it
        procs.append(tb.popen("fr1", argv, stdout=out, stderr=subprocess.STDOUT))
        if name == "zebra":
            wait_for(lambda: (rt / "zserv.api").exists(), 20, "zebra's zserv socket")
    return procs


def _vtysh(rt: Path, cmd: str) -> str:
    argv = ["vtysh", "--vty_socket", str(rt), "-c", cmd]
    return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout


@pytest.mark.netns
@pytest.mark.interop
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_pathd_stateful_session_stays_up(
    testbed_factory: Callable[..., Any], tmp_path: Path
) -> None:
    if not (PATHD.exists() and shutil.which("vtysh")):
        pytest.fail("FRR with pathd is required for the interop tests (make setup installs it)")
    tb = testbed_factory(DATA / "frr_pcep.yaml", prefix="pw", start_daemons=False)
    pcap = tmp_path / "pcep.pcap"
    dump = tshark.tcpdump(tb, "pce", ["-q", "-i", "ctrl", "tcp port 4189"], pcap)
    argv = [sys.executable, "-m", "pce", "--topology", str(tb.topo_file), "--host", "pce"]
    argv += ["--ted", "static", "--log-file", str(tmp_path / "pce.log")]
    with open(tmp_path / "pce.out", "wb") as out:
        pce = tb.popen("pce", argv, env=ENV, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    rt = daemons.frr_runtime_dir(tb.prefix, "fr1")
    frr: list[subprocess.Popen[Any]] = []

    def sessions() -> dict[str, Any]:
        return dict(json.loads(tb.cli("pce", "show pcep sessions json", via="client")))

    try:
        time.sleep(1)  # the PCE listening before pathd's first connection attempt
        frr = _start_frr(tb, rt)
        wait_for(
            lambda: [s["state"] for s in sessions()["sessions"]] == ["Up"],
            90,
            "pathd's session up",
            lambda: (rt / "pathd.log").read_text()[-2000:],
        )
        (up,) = sessions()["sessions"]
        assert up["stateful"] and up["peer"].startswith(FR1)
        wait_for(
            lambda: json.loads(tb.cli("pce", "show pce lsp json", via="client"))["lsps"] != [],
            30,
            "pathd's report in show pce lsp",
        )
        time.sleep(65)  # a minute of keepalives (10 s each way)
        assert frr[1].poll() is None, "pathd died"
        now = sessions()
        (s,) = now["sessions"]
        assert s["id"] == up["id"] and s["state"] == "Up" and now["accepted"] == 1
        # the Open's keepalive and two periodic ones (pathd keeps to the PCE's 30 s)
        assert s["keepalives_rx"] >= 3 and s["errors_tx"] == 0 and s["malformed"] == 0
        frr_view = _vtysh(rt, "show sr-te pcep session")
        assert "Session Status UP" in frr_view and "PCE Capabilities: [Stateful PCE]" in frr_view
        lsps = json.loads(tb.cli("pce", "show pce lsp json", via="client"))
        (lsp,) = lsps["lsps"]
        assert (lsp["name"], lsp["pst"], lsp["head"], lsp["tail"]) == (
            "qe1-CP1",
            "SR",
            FR1,
            "10.1.1.5",
        )
        assert lsps["pccs"][FR1]["syncs"] == 1 and not lsps["pccs"][FR1]["syncing"]
    finally:
        for p in reversed(frr):
            p.terminate()
            p.wait(timeout=10)
        pce.terminate()
        pce.wait(timeout=10)
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=10)
    assert tshark.run(pcap, "-Y", "_ws.malformed || _ws.expert.severity >= warning") == ""
    kinds = tshark.run(pcap, "-Y", "pcep", "-T", "fields", "-e", "pcep.msg").split()
    msgs = [int(k) for row in kinds for k in row.split(",")]
    assert msgs.count(C.MsgType.OPEN) == 2 and msgs.count(C.MsgType.PCRPT) >= 2
    assert msgs.count(C.MsgType.KEEPALIVE) >= 2 + 2 * 2
    if os.environ.get("PCE_RECORD_FRR"):
        RECORDED.write_text("\n".join(m.hex() for m in _pcep_from_pcc(pcap)[:4]) + "\n")
