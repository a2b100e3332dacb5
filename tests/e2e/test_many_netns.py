"""Fifty QE services created at once in namespaces (paper topology with 64 lambdas per TE
link, prefix ``e2w``): every one comes up with its own key_handle and the same key at
both ends, on its own lambdas (no label retry; the stateful PCE's LSP database lists no
(link, lambda) twice); deleting them all leaves no LSP and no ETSI session."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address
from typing import Any

import pytest

from gmpls.rsvp import objects as O
from tests.support.captures import opened_handles, qe_session_ids, rsvp_messages
from tests.support.e2elab import Lab, same_keys

pytestmark = [pytest.mark.netns, pytest.mark.slow]

CREATE = "qe-service create dst 10.1.1.5 key-length 32 layer 2 algorithm 10 refresh time 1000"
N = 50


def _until_reported(lab: Lab, n: int) -> list[dict[str, Any]]:
    """The PCE's ``show pce lsp`` once it lists ``n`` LSPs up (tn1 reports each as it
    comes up; the report of the last may trail its ``wait`` by a few ms)."""
    deadline = time.monotonic() + 10
    while True:
        lsps = [x for x in lab.cli_json("pce", "show pce lsp")["lsps"] if x["state"] == "up"]
        if len(lsps) == n or time.monotonic() > deadline:
            assert len(lsps) == n, [(x["name"], x["state"]) for x in lsps]
            return lsps
        time.sleep(0.25)


def test_fifty_services_at_once(wide_lab: Lab) -> None:
    lab = wide_lab
    t0 = time.time()

    def one(_: int) -> dict[str, Any]:
        return dict(lab.cli_json("tn1", f"{CREATE} wait", timeout=60)["services"][0])

    with ThreadPoolExecutor(N) as pool:
        made = list(pool.map(one, range(N)))
    assert [s["state"] for s in made] == ["up"] * N, [
        (s["id"], s["state"], s["error"]) for s in made if s["state"] != "up"
    ]
    # the stateful PCE holds the lambdas of each path it computes: no two services got the
    # same label on a link, so the head never fell back to local labels nor retried
    counters = lab.cli_json("tn1", "show qe-service")["counters"]
    assert counters["labels_local"] == 0 and counters["label_retries"] == 0, counters
    # and the PCE's LSP database, from tn1's reports: fifty LSPs up, no (link, lambda) twice
    lsps = _until_reported(lab, N)
    used = [(x["link"], x["lambda"]) for lsp in lsps for x in lsp["lambdas"]]
    assert len(used) == 4 * N and len(set(used)) == len(used), sorted(used)
    # distinct handles: the full 64-byte handle of each service, as tn1 wrote it into
    # tn5's QE subobject of its last Path for the tunnel (control LAN capture)
    last: dict[int, bytes] = {}
    for p, m in rsvp_messages(lab.pcap("ctrl")):
        sess = m.get(O.SessionLspTunnelV4)
        if m.msg_type == 1 and str(p.src) == "10.1.1.1" and sess is not None:
            last[sess.tunnel_id] = qe_session_ids(m)[IPv4Address("10.1.1.5")]
    mine = [last[s["tunnel_id"]] for s in made]
    assert len(set(mine)) == N and bytes(64) not in mine
    assert [h[:4].hex() for h in mine] == [s["key_handle_prefix"] for s in made]
    # every session etsiA opened for tn1 (label retries open new ones) is distinct
    handles = sorted({h for t, _, h in opened_handles(lab.pcap("qa")) if t >= t0 - 1})
    assert set(mine) <= set(handles)
    tails = {
        s["key_handle_prefix"]: s
        for s in lab.cli_json("tn5", "show qe-service")["services"]
        if s["role"] == "tail"
    }
    for s in made:
        t = tails[s["key_handle_prefix"]]
        assert t["state"] == "up" and same_keys(s, t), (s, t)
    assert len({s["fingerprint"] for s in made}) == N  # fifty different keys
    for s in made:
        lab.cli_json("tn1", f"qe-service delete {s['id']}")
    deadline = time.monotonic() + 20
    while any(lab.cli_json(n, "show mpls lsp")["lsps"] for n in ("tn1", "tn3", "tn5")):
        assert time.monotonic() < deadline, "LSPs left after deleting every service"
        time.sleep(0.25)
    for h in handles[:: max(1, len(handles) // 5)]:
        for node in ("tn1", "tn5"):
            assert lab.etsi(node, "connect", "--handle", h.hex())["status"] == 4
