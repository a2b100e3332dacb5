"""The QE service (gmpls/qe_service, node_agent/qe_service.py, node_agent/qe_cli.py) on
the five paper nodes wired in memory on one virtual clock (tests/support/memlab.py).

Everything is the real code: the QE cores and their shells, the RSVP cores, the PCE
computation, the CLI command tables, the two ETSI 004 proxy cores and the two IDQ3P
emulator cores with their key stores; only the wires and the clock are in memory. The
same properties are proven over real sockets in namespaces by test_paper_netns.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from gmpls import qe
from gmpls.pcep import examples as ex
from gmpls.pcep import messages as M
from gmpls.pcep import objects as PO
from gmpls.pcep.constants import LspState
from gmpls.qe_service import core as qe_core
from gmpls.qe_service.events import Create
from gmpls.qe_service.model import QeServiceError
from gmpls.rsvp import decode
from gmpls.rsvp import objects as O
from node_agent.qe_cli import created, parse_create
from pce.lspdb import Initiation
from tests.support.e2elab import same_keys, wide_topology
from tests.support.memlab import MemLab, qe_subobject_of

TN1, TN5 = IPv4Address("10.1.1.1"), IPv4Address("10.1.1.5")
TN3 = IPv4Address("10.1.1.3")
PAPER_CREATE = "qe-service create dst 10.1.1.5 key-length 32 layer 2 algorithm 10 refresh time 1000"


@pytest.fixture
def lab() -> Iterator[MemLab]:
    lab = MemLab()
    lab.start()
    yield lab
    # no key delivered is in any log line of the QE services or the proxies
    keys = {k.hex() for k in lab.qkd.delivered} | {repr(k) for k in lab.qkd.delivered}
    for who, message, fields in lab.logs:
        text = f"{message} {fields!r}"
        assert not any(k in text for k in keys), (who, message)


async def create(lab: MemLab, line: str = PAPER_CREATE, node: str = "tn1") -> dict:
    out = json.loads(await lab.cli(node, line + " wait json"))
    return out["services"][0]


async def show(lab: MemLab, node: str) -> list[dict]:
    return json.loads(await lab.cli(node, "show qe-service json"))["services"]


def tail_of(lab: MemLab, head: dict) -> dict:
    for s in lab.nodes["tn5"].core.services():
        if s.key_handle is not None and s.key_handle[:4].hex() == head["key_handle_prefix"]:
            return s.as_json(0.0)
    raise AssertionError("no tail service with the head's key handle")


async def test_paper_workflow_ladder_handle_and_equal_keys(lab: MemLab) -> None:
    s = await create(lab)
    assert s["state"] == "up", s
    assert s["path"] == ["10.1.1.1", "10.1.1.2", "10.1.1.3", "10.1.1.4", "10.1.1.5"]
    assert s["key_index"] == 0 and s["fingerprint"]
    t = tail_of(lab, s)
    assert t["state"] == "up" and t["role"] == "tail"
    assert t["fingerprint"] == s["fingerprint"] and t["key_index"] == 0
    assert t["path"] == s["path"]
    # the Fig. 6 order: Path 1→2→3→4→5, then Resv 5→4→3→2→1
    rsvp = [x for x in lab.ladder() if x.split()[0] in ("Path", "Resv")]
    assert rsvp == [
        "Path 10.1.1.1->10.1.1.2",
        "Path 10.1.1.2->10.1.1.3",
        "Path 10.1.1.3->10.1.1.4",
        "Path 10.1.1.4->10.1.1.5",
        "Resv 10.1.1.5->10.1.1.4",
        "Resv 10.1.1.4->10.1.1.3",
        "Resv 10.1.1.3->10.1.1.2",
        "Resv 10.1.1.2->10.1.1.1",
    ]
    # the transit nodes hold the LSP with a lambda on each side, and told OSPF (batched)
    lab.settle(lambda: ("tn3", 3, (2, 3, 4, 5, 6, 7, 8)) in lab.link_changes)
    lsps = json.loads(await lab.cli("tn3", "show mpls lsp json"))["lsps"]
    assert [x["role"] for x in lsps] == ["transit"] and lsps[0]["in_lambda"] == 1
    assert ("tn3", 3, (2, 3, 4, 5, 6, 7, 8)) in lab.link_changes
    nb = json.loads(await lab.cli("tn1", "show rsvp neighbor json"))
    assert [n["address"] for n in nb["neighbors"]] == ["10.1.1.2"]


async def test_path_from_tn1_carries_the_handle_in_tn5s_qe_subobject(lab: MemLab) -> None:
    s = await create(lab)
    assert s["state"] == "up"
    paths = [data for src, _, name, data in lab.rsvp_sent if src == TN1 and name == "PATH"]
    msg = decode(paths[0])
    route = msg.get(O.ExplicitRoute)
    assert route is not None
    sub = qe_subobject_of(route.subobjects, TN5)
    assert sub.has_session and sub.session_id[:4].hex() == s["key_handle_prefix"]
    assert sub.params() == qe.QeParams(32, 2, 10, 1000, 1)
    # tn1's own QE subobject and subobjects are gone from the ERO it sends (RFC 3209 §4.3.4)
    with pytest.raises(LookupError):
        qe_subobject_of(route.subobjects, TN1)


async def test_time_refresh_keeps_both_ends_in_step(lab: MemLab) -> None:
    s = await create(lab, PAPER_CREATE.replace("refresh time 1000", "refresh time 40"))
    head = lab.nodes["tn1"].core.find(s["id"])
    tail = next(x for x in lab.nodes["tn5"].core.services() if x.key_handle == head.key_handle)
    lab.settle(lambda: head.refresh_count >= 5 and tail.refresh_count >= 5)
    # every index both ends hold is the same key at both ends
    h, t = dict(head.history), dict(tail.history)
    common = set(h) & set(t)
    assert len(common) >= 5 and all(h[i] == t[i] for i in common)
    assert abs((head.key_index or 0) - (tail.key_index or 0)) <= 1


async def test_volume_refresh_counts_traffic_at_both_ends(lab: MemLab) -> None:
    s = await create(lab, PAPER_CREATE.replace("refresh time 1000", "refresh volume 1"))
    tail = tail_of(lab, s)
    for node, sid in (("tn1", s["id"]), ("tn5", tail["id"])):
        await lab.cli(node, f"qe-service traffic {sid} {512 * 1024}")
        await lab.cli(node, f"qe-service traffic {sid} {3 * 1024 * 1024}")
    h = lab.nodes["tn1"].core.find(s["id"])
    t = lab.nodes["tn5"].core.find(tail["id"])
    lab.settle(lambda: h.key_index == t.key_index == 3)
    assert h.key_index == t.key_index == 3
    assert h.refresh_count == t.refresh_count == 3
    assert h.fingerprint == t.fingerprint


async def test_volume_refresh_with_a_simulated_rate(lab: MemLab) -> None:
    s = await create(lab, PAPER_CREATE.replace("refresh time 1000", "refresh volume 1"))
    tail = tail_of(lab, s)
    for node, sid in (("tn1", s["id"]), ("tn5", tail["id"])):
        out = json.loads(await lab.cli(node, f"qe-service traffic {sid} rate 160M json"))
        assert "error" not in out, out
    h = lab.nodes["tn1"].core.find(s["id"])
    t = lab.nodes["tn5"].core.find(tail["id"])
    lab.settle(lambda: min(h.key_index or 0, t.key_index or 0) >= 3)
    hk, tk = dict(h.history), dict(t.history)
    assert all(hk[i] == tk[i] for i in range(4))
    assert "% error" in await lab.cli("tn1", f"qe-service traffic {s['id']} rate fast")


async def test_delete_tears_down_and_closes_both_sessions(lab: MemLab) -> None:
    s = await create(lab)
    assert len(lab.qkd.open_sessions()) == 2
    out = json.loads(await lab.cli("tn1", f"qe-service delete {s['id']} json"))
    assert out["services"][0]["state"] == "down"
    lab.settle(lambda: lab.qkd.open_sessions() == [])
    assert "PathTear 10.1.1.4->10.1.1.5" in lab.ladder()
    for node in ("tn1", "tn2", "tn3", "tn4", "tn5"):
        assert json.loads(await lab.cli(node, "show mpls lsp json"))["lsps"] == []
        core = lab.rsvp[node].core
        assert all(set(core.free[i]) == set(core.links[i].lambdas) for i in core.links)
    assert tail_of(lab, s)["state"] == "down"


async def test_no_key_at_head_fails_252_1_and_nothing_is_left_open(lab: MemLab) -> None:
    lab.qkd.no_key()
    s = await create(lab)
    assert s["state"] == "failed" and s["code"] == [252, 1]
    assert "GK_INSUFFICIENT_KEY_AVAILABLE" in s["error"]
    assert lab.qkd.open_sessions() == []
    assert not [x for x in lab.ladder() if x.startswith("Path ")]


async def test_proxy_unreachable_at_head_fails_252_1(lab: MemLab) -> None:
    lab.qkd.unreachable.add("tn1")
    s = await create(lab)
    assert s["state"] == "failed" and s["code"] == [252, 1]
    assert "unreachable" in s["error"]


async def test_handle_refused_at_tail_is_patherr_252_2_and_everything_closes(lab: MemLab) -> None:
    lab.qkd.refuse_joins()
    s = await create(lab)
    assert s["state"] == "failed" and s["code"] == [252, 2], s
    lab.settle(lambda: lab.qkd.open_sessions() == [])
    assert "PathErr 10.1.1.5->10.1.1.4" in lab.ladder()
    # the head's PathTear takes a few hops (virtual microseconds) to clear the path
    lab.settle(lambda: all(r.core.psbs == {} for r in lab.rsvp.values()), 1.0)


async def test_tail_proxy_unreachable_is_patherr_252_2(lab: MemLab) -> None:
    lab.qkd.unreachable.add("tn5")
    s = await create(lab)
    assert s["state"] == "failed" and s["code"] == [252, 2]
    lab.settle(lambda: lab.qkd.open_sessions() == [])


async def test_pce_label_busy_at_the_head_is_not_used(lab: MemLab) -> None:
    # a stateless PCE never learns the lambdas in use: its second ERO names lambda 1 again
    a = await create(lab)
    b = await create(lab)
    assert a["state"] == b["state"] == "up"
    assert a["labels"] == "pce" and b["labels"] == "local"
    assert a["key_handle_prefix"] != b["key_handle_prefix"]
    lsps = json.loads(await lab.cli("tn3", "show mpls lsp json"))["lsps"]
    assert sorted(x["out_lambda"] for x in lsps) == [1, 2]
    counters = lab.nodes["tn1"].core.counters
    assert counters["labels_local"] == 1 and counters["label_retries"] == 0
    assert len(lab.qkd.open_sessions()) == 4


async def test_stateful_pce_gives_quick_services_their_own_lambdas() -> None:
    """With the stateful PCE the second service gets the next lambda from the PCE itself
    (the first path's lambdas are reserved, then held by tn1's report): no local labels,
    no retry. The PCE's LSP database follows tn1's reports: two LSPs up, one after a
    delete."""
    lab = MemLab(stateful_pce=True)
    lab.start()
    a = await create(lab)
    b = await create(lab)
    assert a["state"] == b["state"] == "up"
    assert a["labels"] == b["labels"] == "pce"
    counters = lab.nodes["tn1"].core.counters
    assert counters["labels_local"] == 0 and counters["label_retries"] == 0
    lsps = lab.pce.lsps.as_json(lab.sim.now)["lsps"]
    assert [(x["head"], x["tail"], x["state"]) for x in lsps] == [
        ("10.1.1.1", "10.1.1.5", "up")
    ] * 2
    assert [sorted({y["lambda"] for y in x["lambdas"]}) for x in lsps] == [[1], [2]]
    assert lab.pce.lsps.reservations == []  # both confirmed by the reports
    await lab.cli("tn1", f"qe-service delete {a['id']}")
    lab.settle(lambda: len(lab.pce.lsps.all()) == 1)
    assert lab.pce.lsps.all()[0].name == f"qe-tn1-{b['id']}"


async def test_a_deleted_lsp_stays_going_down_at_the_pce_until_rsvp_has_torn_it_down() -> None:
    """A graceful deletion holds the LSP's lambdas one more round trip (Path with the D
    bit, the tail's Resv echoing it, then PathTear): the head's report at the delete says
    GOING-DOWN, so the PCE keeps those lambdas in use, and the report that removes the LSP
    comes once RSVP holds nothing of the tunnel."""
    lab = MemLab(stateful_pce=True)
    lab.start()
    a = await create(lab)
    await lab.cli("tn1", f"qe-service delete {a['id']}")
    tunnel = int(a["tunnel_id"])
    assert lab.rsvp["tn1"].core.tunnel_in_use(tunnel)
    (lsp,) = lab.pce.lsps.all()
    assert lsp.state == LspState.GOING_DOWN and lsp.holds_lambdas
    assert {ch for _, ch in lsp.lambdas} == {1}
    lab.settle(lambda: lab.pce.lsps.all() == [])
    assert not lab.rsvp["tn1"].core.tunnel_in_use(tunnel)
    assert lab.pce.lsps.held(lab.sim.now) == {}


async def test_a_deletion_is_reported_removed_after_the_core_has_forgotten_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The core keeps only the last KEEP_FINISHED finished services; a burst of deletions
    can finish more before RSVP has torn the first ones down (200 deleted at once did,
    and ten LSPs stayed GOING-DOWN at the PCE for good). The removal is reported from
    the GOING-DOWN report kept for the tunnel, not from the service."""
    monkeypatch.setattr(qe_core, "KEEP_FINISHED", 1)
    lab = MemLab(stateful_pce=True)
    lab.start()
    a, b = await create(lab), await create(lab)
    await lab.cli("tn1", f"qe-service delete {a['id']}")
    await lab.cli("tn1", f"qe-service delete {b['id']}")
    with pytest.raises(QeServiceError):
        lab.nodes["tn1"].core.find(a["id"])  # forgotten while its LSP is torn down
    assert {x.state for x in lab.pce.lsps.all()} == {LspState.GOING_DOWN}
    lab.settle(lambda: lab.pce.lsps.all() == [])
    assert lab.pce.lsps.held(lab.sim.now) == {}


async def test_pce_initiated_service_comes_up_and_is_released(lab: MemLab) -> None:
    """RFC 8281 at the head: a PCInitiate (the paper's service, SRP 1) makes tn1 run the
    whole QE workflow; its reports carry SRP 1 and the C flag, so the PCE's initiation is
    up; both ends hold the same key. The release (SRP R flag, the PLSP-ID) tears it down.
    A PCInitiate without QE parameters is refused (24, 1); a release of an LSP no PCE
    initiated (19, 3)."""
    tn1 = lab.nodes["tn1"]
    lab.pce.lsps.initiations[1] = Initiation(1, TN1, TN5, "qe-init-1")
    assert tn1.on_initiate(ex.paper_pcinitiate(1).entries[0]) is None
    (s,) = tn1.core.services()
    lab.settle(lambda: s.state == "up", 10)
    assert same_keys(s.as_json(0.0), tail_of(lab, s.as_json(0.0)))
    lab.settle(lambda: lab.pce.lsps.initiations[1].state == "up")
    (lsp,) = lab.pce.lsps.all()
    assert lsp.plsp_id == s.tunnel_id and lsp.name == f"qe-tn1-{s.id}"
    release = ex.paper_release(1, s.tunnel_id).entries[0]
    assert tn1.on_initiate(release) is None
    lab.settle(lambda: lab.pce.lsps.initiations[1].state == "released", 10)
    assert s.state == "down" and lab.pce.lsps.all() == []
    # one that fails at the head (tn3 is not QE-capable: NO-PATH) is reported removed
    lab.pce.lsps.initiations[4] = Initiation(4, TN1, IPv4Address("10.1.1.3"), "qe-init-4")
    to_tn3 = replace(ex.paper_pcinitiate(4).entries[0], endpoints=PO.EndPointsIpv4(TN1, TN3))
    assert tn1.on_initiate(to_tn3) is None
    lab.settle(lambda: lab.pce.lsps.initiations[4].state == "failed", 10)
    assert "NO-PATH" in lab.pce.lsps.initiations[4].reason  # the head's own words
    plain = M.LspEntry(PO.LspObject(0), PO.Srp(2), PO.Ero(), endpoints=PO.EndPointsIpv4(TN1, TN5))
    assert tn1.on_initiate(plain) == (24, 1)
    assert tn1.on_initiate(ex.paper_release(3, 99).entries[0]) == (19, 3)


async def test_busy_label_downstream_is_retried_with_local_labels(lab: MemLab) -> None:
    # lambda 1 of tn3's link to tn4 is taken by something the PCE does not know about
    lab.rsvp["tn3"].core.free[3].discard(1)
    s = await create(lab)
    assert s["state"] == "up" and s["labels"] == "local", s
    assert "PathErr 10.1.1.3->10.1.1.2" in lab.ladder()
    assert lab.nodes["tn1"].core.counters["label_retries"] == 1
    lsps = json.loads(await lab.cli("tn3", "show mpls lsp json"))["lsps"]
    assert [x["out_lambda"] for x in lsps] == [2]
    # the first attempt's key session was closed at the head; the tail never opened it
    lab.settle(lambda: len(lab.qkd.open_sessions()) == 2)


async def test_pce_no_path_reason_reaches_the_cli(lab: MemLab) -> None:
    s = await create(lab, "qe-service create dst 10.1.1.5 algorithm 99")
    assert s["state"] == "failed" and "NO-PATH" in s["error"] and "99" in s["error"]
    s = await create(lab, "qe-service create dst 10.1.1.3")
    assert s["state"] == "failed" and "NO-PATH" in s["error"]


async def test_cli_text_forms_and_errors(lab: MemLab) -> None:
    s = await create(lab)
    text = await lab.cli("tn1", "show qe-service")
    assert s["fingerprint"] in text and "up" in text and s["key_handle_prefix"] in text
    assert "10.1.1.2" in await lab.cli("tn1", "show rsvp neighbor")
    assert "head" in await lab.cli("tn1", "show mpls lsp")
    assert "% error" in await lab.cli("tn1", "qe-service create dst 10.1.1")
    assert "% error" in await lab.cli("tn1", "qe-service delete 999")
    assert "% error" in await lab.cli("tn5", f"qe-service delete {tail_of(lab, s)['id']}")
    # no key byte is ever shown: only the 16-hex fingerprint
    key = lab.nodes["tn1"].core.find(s["id"]).key
    assert key is not None and key.hex() not in text + await lab.cli("tn1", "show qe-service json")


def test_parse_create() -> None:
    dst, p, bw, wait = parse_create(
        _words(
            "dst 10.1.1.5 key-length 64 layer 3 algorithm 12 refresh volume 5 bandwidth 10G wait"
        )
    )
    assert dst == TN5 and bw == 10e9 and wait
    assert p == qe.QeParams(64, 3, 12, 5, qe.RefreshType.VOLUME_MIB)
    assert parse_create(["dst", "10.1.1.5"])[1] == qe.QeParams()
    assert parse_create(_words("dst 10.1.1.5 refresh none"))[1].refresh_type == 0
    for bad in ("dst", "dst x", "key-length x dst 10.1.1.5", "dst 10.1.1.5 bogus 1", ""):
        with pytest.raises(QeServiceError):
            parse_create(_words(bad))


async def test_dead_transit_node_tears_down_closes_keys_and_bypass_is_used() -> None:
    lab = MemLab(hello_ms=50)
    lab.start()
    lab.settle(lambda: all(n.up for n in lab.rsvp["tn2"].core.neighbors.values()))
    s = await create(lab)
    assert s["state"] == "up" and "10.1.1.3" in s["path"]
    lab.kill("tn3")
    core = lab.nodes["tn1"].core
    lab.settle(lambda: core.find(s["id"]).state != "up")
    h = core.find(s["id"])
    assert h.state == "failed" and h.code == (24, 5), (h.state, h.code, h.error)
    # the tail cannot tell tn4's PathTear from a move: it holds its key session for a new
    # Path of the tunnel (reroute_hold), then closes it; the head (not delegated) did not
    tail = lab.nodes["tn5"].core.find(tail_of(lab, s)["id"])
    lab.settle(lambda: tail.state == "rerouting")
    assert tail.key is not None and ("etsiB", tail.key_handle) in lab.qkd.open_sessions()
    lab.settle(lambda: lab.qkd.open_sessions() == [], 15.0)
    assert tail.state == "down" and tail.key is None, (tail.state, tail.error)
    # OSPF would now tell the PCE that tn3 is gone; the in-memory TED forgets it
    for key in [k for k in list(lab.pce.ted._te) if str(k.adv_router) == "10.1.1.3"]:
        lab.pce.ted.flush(key)
    s2 = await create(lab)
    assert s2["state"] == "up", s2
    assert s2["path"] == ["10.1.1.1", "10.1.1.2", "10.1.1.4", "10.1.1.5"]
    assert tail_of(lab, s2)["fingerprint"] == s2["fingerprint"]


async def test_fifty_at_once_distinct_handles_equal_keys(tmp_path: Path) -> None:
    lab = MemLab(wide_topology(tmp_path, 64))
    lab.start()
    node = lab.nodes["tn1"]
    made = [node.core.find(created(node.feed(Create(TN5, qe.QeParams())))) for _ in range(50)]
    lab.settle(lambda: all(s.state in ("up", "failed", "down") for s in made), 60.0)
    assert [s.state for s in made] == ["up"] * 50, [(s.state, s.error) for s in made]
    assert len({s.key_handle for s in made}) == 50
    tails = {t.key_handle: t for t in lab.nodes["tn5"].core.services()}
    assert all(tails[s.key_handle].fingerprint == s.fingerprint for s in made)


def _words(line: str) -> list[str]:
    return line.split()
