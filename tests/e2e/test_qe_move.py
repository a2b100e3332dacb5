"""Delegation and PCUpd (RFC 8231) end to end in memory: the stateful PCE moves a delegated
QE service, make-before-break while it is up, re-signalled after tn3 died; the key session
and the keys stay the same at both ends.

The paper testbed of :class:`tests.support.memlab.MemLab` on one virtual clock with the
stateful in-memory PCE (its LSP database fed by tn1's reports through the codec). The PCE's
side is the real :mod:`pce.updates` (what the PCEP server runs on a TED change or a down
report); its PCUpd goes through the codec to tn1's shell (``on_update``, what the PCC
hands it).
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address

from gmpls.pcep import constants as C
from gmpls.pcep import messages as M
from gmpls.pcep import objects as PO
from gmpls.qe_service.model import Service
from pce import updates
from tests.support.memlab import MemLab

TN1, TN3, TN5 = (IPv4Address(f"10.1.1.{i}") for i in (1, 3, 5))
VIA_TN3 = ["10.1.1.1", "10.1.1.2", "10.1.1.3", "10.1.1.4", "10.1.1.5"]
BYPASS = ["10.1.1.1", "10.1.1.2", "10.1.1.4", "10.1.1.5"]
CREATE = "qe-service create dst 10.1.1.5 refresh time 1000 delegate wait json"


async def _service(lab: MemLab) -> tuple[Service, Service]:
    out = json.loads(await lab.cli("tn1", CREATE))["services"][0]
    assert out["state"] == "up" and out["path"] == VIA_TN3 and out["delegated"], out
    head = lab.nodes["tn1"].core.find(out["id"])
    (tail,) = [t for t in lab.nodes["tn5"].core.services() if t.key_handle == head.key_handle]
    assert tail.fingerprint == head.fingerprint
    return head, tail


def _deliver(lab: MemLab, entries: list[M.LspEntry]) -> None:
    """The PCE's PCUpd, through the codec, to tn1 (the PCC checked PLSP-ID and D)."""
    msg = M.decode_message(M.PCUpd(tuple(entries)).encode())
    assert isinstance(msg, M.PCUpd)
    for e in msg.entries:
        assert lab.nodes["tn1"].on_update(e) is None


def _pce_round(lab: MemLab) -> int:
    """What the PCEP server's ``recompute`` does: a PCUpd for every candidate."""
    pce, now = lab.pce, lab.sim.now
    entries = []
    for lsp in updates.candidates(pce.lsps, pce.ted, now):
        entry = updates.compute_update(lsp, pce.service, pce.lsps, now)
        if entry is not None:
            entries.append(entry)
    if entries:
        _deliver(lab, entries)
    return len(entries)


def _same_keys_after(lab: MemLab, head: Service, tail: Service, seconds: float) -> None:
    """Time refresh goes on at both ends: the same key index and fingerprint."""
    index = head.key_index or 0
    lab.settle(lambda: (head.key_index or 0) >= index + 2 and tail.key_index == head.key_index,
               seconds)  # fmt: skip
    assert tail.fingerprint == head.fingerprint


async def test_operator_move_is_make_before_break_and_keeps_the_keys() -> None:
    lab = MemLab(stateful_pce=True)
    lab.start()
    head, tail = await _service(lab)
    handle, old_lsp = head.key_handle, head.lsp
    (lsp,) = lab.pce.lsps.all()
    assert lsp.delegated and lsp.state == C.LspState.UP
    # qe-service update ... avoid 10.1.1.3 at the PCE: a new path although the old is valid
    entry = updates.compute_update(
        lsp, lab.pce.service, lab.pce.lsps, lab.sim.now, avoid=[TN3], force=True
    )
    assert entry is not None and entry.lsp.delegated and entry.srp is not None
    _deliver(lab, [entry])
    assert head.update_route is not None and head.state == "up"  # old LSP still carries it
    lab.settle(lambda: head.moves == 1)
    assert head.path == BYPASS and head.lsp is not None and old_lsp is not None
    assert (head.lsp.tunnel_id, head.lsp.lsp_id) == (old_lsp.tunnel_id, old_lsp.lsp_id + 1)
    assert head.key_handle == handle and tail.key_handle == handle and tail.moves == 1
    assert tail.lsp == head.lsp and tail.state == "up"
    lab.settle(lambda: not lab.rsvp["tn3"].core.psbs)
    ladder = lab.ladder()
    first_new_path = ladder.index("Path 10.1.1.2->10.1.1.4")
    assert first_new_path < ladder.index("PathTear 10.1.1.2->10.1.1.3")  # make before break
    assert len(lab.rsvp["tn1"].core.psbs) == 1
    assert sorted(p for p, _ in lab.qkd.open_sessions()) == ["etsiA", "etsiB"]
    # the head's report answers the update (its SRP-ID): the PCE has the new path
    (lsp,) = lab.pce.lsps.all()
    assert lsp.update_srp is None and lsp.update_result == "moved" and lsp.updates == 1
    assert [str(s.router_id) for s in lsp.route if hasattr(s, "interface_id")] == BYPASS[:-1]
    assert lab.pce.lsps.reservations == []  # confirmed by the report
    _same_keys_after(lab, head, tail, 5.0)


async def test_tn3_dies_the_pce_moves_the_delegated_service_onto_the_bypass() -> None:
    lab = MemLab(hello_ms=50, stateful_pce=True)
    lab.start()
    lab.settle(lambda: all(n.up for n in lab.rsvp["tn2"].core.neighbors.values()))
    head, tail = await _service(lab)
    handle = head.key_handle
    lab.kill("tn3")
    lab.settle(lambda: head.state == "rerouting" and tail.state == "rerouting")
    assert head.key is not None and tail.key is not None
    (lsp,) = lab.pce.lsps.all()
    assert lsp.state == C.LspState.DOWN and lsp.delegated
    # the TED still has tn3 (OSPF has not noticed): the same path, so no update
    assert _pce_round(lab) == 0
    for key in [k for k in list(lab.pce.ted._te) if k.adv_router == TN3]:
        lab.pce.ted.flush(key)
    assert _pce_round(lab) == 1 and _pce_round(lab) == 0  # one outstanding at a time
    lab.settle(lambda: head.state == "up" and tail.state == "up")
    assert head.path == BYPASS and head.moves == tail.moves == 1
    assert head.key_handle == tail.key_handle == handle
    assert sorted(p for p, _ in lab.qkd.open_sessions()) == ["etsiA", "etsiB"]
    (lsp,) = lab.pce.lsps.all()
    assert lsp.state == C.LspState.UP and lsp.update_result == "moved"
    _same_keys_after(lab, head, tail, 5.0)


async def test_no_update_within_the_hold_fails_the_service_and_closes_the_keys() -> None:
    lab = MemLab(hello_ms=50, stateful_pce=True)
    lab.start()
    lab.settle(lambda: all(n.up for n in lab.rsvp["tn2"].core.neighbors.values()))
    head, tail = await _service(lab)
    lab.kill("tn3")
    lab.settle(lambda: head.state == "rerouting")
    lab.settle(lambda: head.state == "failed" and tail.state == "down", 15.0)
    assert "no new LSP within 10 s" in head.error and head.key is None and tail.key is None
    lab.settle(lambda: lab.qkd.open_sessions() == [])
    assert lab.pce.lsps.all() == []  # reported removed


async def test_updates_the_head_refuses() -> None:
    """Not delegated, unknown, another tail: refused, nothing changes (the PCC answers
    PCErr (19, 1) / (19, 3) for the first two, ``daemonkit.pcep``; the shell reports a
    route it cannot take with LSP-ERROR-CODE 4 and the reason, the LSP unchanged)."""
    lab = MemLab(stateful_pce=True)
    lab.start()
    plain = json.loads(await lab.cli("tn1", CREATE.replace(" delegate", "")))["services"][0]
    head, _tail = await _service(lab)
    tn1 = lab.nodes["tn1"]
    lsp = lab.pce.lsps.find("10.1.1.1", head.tunnel_id)
    assert lsp is not None
    entry = updates.compute_update(lsp, lab.pce.service, lab.pce.lsps, 0.0, force=True)
    assert entry is not None and entry.srp is not None
    unknown = M.LspEntry(PO.LspObject(77), entry.srp, entry.ero)
    assert tn1.on_update(unknown) == C.ERR_UPDATE_UNKNOWN_PLSP
    other = M.LspEntry(PO.LspObject(int(plain["tunnel_id"])), entry.srp, entry.ero)
    assert tn1.on_update(other) is None  # the core refuses: reported with the reason
    assert lab.pce.lsps.find("10.1.1.1", int(plain["tunnel_id"])) is not None
    bad = lab.pce.lsps.find("10.1.1.1", int(plain["tunnel_id"]))
    assert bad is not None and "not delegated" in bad.error and bad.error_code == 4
    # a route to another tail: refused, the service stays where it is
    to_tn3 = M.LspEntry(entry.lsp, entry.srp, PO.Ero(entry.ero.subobjects[:4]))  # type: ignore[union-attr]
    assert tn1.on_update(to_tn3) is None
    assert head.moves == 0 and head.update_route is None and head.state == "up"
    lsp = lab.pce.lsps.find("10.1.1.1", head.tunnel_id)
    assert lsp is not None and "changes the ends" in lsp.update_result
