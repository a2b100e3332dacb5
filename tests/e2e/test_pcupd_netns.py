"""The stateful PCE moves a QE service it initiated when tn3 stops (namespaces, the paper
testbed under prefix ``e2``; root).

``qe-service initiate ... wait`` on the PCE's CLI sends PCInitiate to tn1, which sets up
the paper's service tn1 -> tn5 through tn3 and delegates it (RFC 8281: a PCE-initiated
LSP is delegated to its PCE); both ends hold the same keys. Then tn3's node agent stops:
its neighbours' RSVP Hellos tear the LSP down (tn1 learns by PathErr, tn5 by tn4's
PathTear), both ends hold their key session (state rerouting), tn1 reports the LSP down;
once OSPF tells the PCE that tn3 is gone its TED no longer holds the path, and the PCE
sends PCUpd with the bypass tn1-tn2-tn4-tn5. tn1 signals it with the same key handle,
tn5 takes the new Path into the same service: the keys are the same at both ends, before
and after, and the PCE's LSP database shows the move.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from compose import ladder as L
from tests.support import tshark
from tests.support.e2elab import Lab, same_keys
from tests.support.netns_util import until

pytestmark = [pytest.mark.netns]

INITIATE = (
    "qe-service initiate head 10.1.1.1 dst 10.1.1.5 key-length 32 layer 2 algorithm 10 "
    "refresh time 1000 wait"
)
VIA_TN3 = ["10.1.1.1", "10.1.1.2", "10.1.1.3", "10.1.1.4", "10.1.1.5"]
BYPASS = ["10.1.1.1", "10.1.1.2", "10.1.1.4", "10.1.1.5"]


def _until(what: str, cond: Any, timeout: float, step: float = 0.25) -> Any:
    return until(what, cond, timeout, step)


def _head(lab: Lab) -> dict[str, Any]:
    (s,) = [s for s in lab.cli_json("tn1", "show qe-service")["services"] if s["role"] == "head"]
    return dict(s)


def _tail(lab: Lab, prefix: str) -> dict[str, Any]:
    services = lab.cli_json("tn5", "show qe-service")["services"]
    (s,) = [s for s in services if s["role"] == "tail" and s["key_handle_prefix"] == prefix]
    return dict(s)


def test_pce_initiated_service_moved_by_pcupd_when_tn3_stops(paper_lab: Lab) -> None:
    lab = paper_lab
    ini = lab.cli_json("pce", INITIATE, timeout=60)
    assert ini["state"] == "up", ini
    head = _head(lab)
    assert head["state"] == "up" and head["path"] == VIA_TN3 and head["delegated"], head
    prefix = head["key_handle_prefix"]
    tail = _tail(lab, prefix)
    assert same_keys(head, tail), (head["keys"], tail["keys"])
    (lsp,) = lab.cli_json("pce", "show pce lsp")["lsps"]
    assert lsp["delegated"] and lsp["state"] == "up" and lsp["plsp_id"] == head["tunnel_id"]

    t0 = time.monotonic()
    lab.tb.stop("tn3")
    moved = _until(
        "tn1's service moved onto the bypass",
        lambda: (h := _head(lab))["moves"] == 1 and h["state"] == "up" and h,
        40,
    )
    print(f"tn3 stopped -> service up on the bypass: {time.monotonic() - t0:.1f} s")
    assert moved["path"] == BYPASS and moved["key_handle_prefix"] == prefix, moved
    tail = _until(
        "tn5's service on the new LSP",
        lambda: (t := _tail(lab, prefix))["state"] == "up" and t["moves"] == 1 and t,
        10,
    )
    assert tail["id"] == _tail(lab, prefix)["id"] and tail["path"] == BYPASS, tail
    # the same key session: both ends hold the same keys, index 0 (before the move) too;
    # time refresh went on through the move
    _until("a refresh after the move", lambda: (_head(lab)["key_index"] or 0) >= 2 + (
        head["key_index"] or 0), 10)  # fmt: skip
    assert same_keys(_head(lab), _tail(lab, prefix))
    # the PCE: the LSP on the bypass, the update answered, the initiation still up
    data = lab.cli_json("pce", "show pce lsp")
    (lsp,) = data["lsps"]
    assert (lsp["state"], lsp["update_result"], lsp["update_pending"]) == ("up", "moved", None)
    assert [h.split(":")[0] for h in lsp["path"] if ":" in h] == BYPASS[:-1], lsp["path"]
    assert data["initiated"][0]["state"] == "up"
    counters = lab.cli_json("tn1", "show qe-service")["counters"]
    assert counters["moved"] == 1 and counters["rerouting"] <= 1
    # on the wire, read by tshark: the PCInitiate (C flag) and the PCUpd (one outstanding at
    # a time) name tn1's LSP, tn1's report answers the PCUpd's SRP-ID; nothing malformed
    time.sleep(0.3)  # the last frames reach the capture file
    pcap = lab.pcap("ctrl")
    assert L.decode(pcap).malformed == []

    def fields(flt: str, name: str) -> list[str]:
        """``name`` of every PCEP message matching ``flt`` (a frame may carry several)."""
        out = tshark.run(pcap, "-Y", flt, "-T", "fields", "-e", name)
        return [v for row in out.split() for v in row.split(",")]

    assert fields("pcep.msg == 12", "pcep.obj.lsp.flags.create") == ["1"]
    tunnel = str(head["tunnel_id"])
    srps = fields("pcep.msg == 11", "pcep.obj.srp.id-number")
    assert srps and set(fields("pcep.msg == 11", "pcep.obj.lsp.plsp-id")) == {tunnel}, srps
    answer = f"pcep.msg == 10 && pcep.obj.srp.id-number == {srps[-1]}"
    assert set(fields(answer, "pcep.obj.lsp.plsp-id")) == {tunnel}
