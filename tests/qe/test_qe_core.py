"""The QE service core (gmpls/qe_service/core.py) alone: events in, actions out, time
passed in. No sockets, no asyncio, no other core: every answer the shell would bring back
(PCRep, ETSI 004 replies, RSVP's actions) is written here by hand."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any, TypeVar

import pytest

from gmpls import ero, qe
from gmpls.qe_service.core import NO_PROXY, QeServiceCore
from gmpls.qe_service.events import (
    Action,
    AddTraffic,
    AdvertiseLink,
    Create,
    CreateLsp,
    CreateLspFailed,
    DataplaneKey,
    DataplaneStop,
    DataplaneTraffic,
    Delete,
    DeleteLsp,
    EtsiClose,
    EtsiConnect,
    EtsiGetKey,
    EtsiOpen,
    EtsiReply,
    Event,
    Log,
    PathReply,
    PcepFailed,
    RequestPath,
    ServiceChanged,
    SetRate,
    Shutdown,
    TailJoin,
    Tick,
    ToRsvp,
    Update,
)
from gmpls.qe_service.model import MIB, QeServiceError
from gmpls.rsvp.events import (
    LinkResources,
    LspDown,
    LspKey,
    LspUp,
    NeedQeSession,
    QeClose,
    QeFailed,
    QeJoin,
    QeSessionReady,
)

TN1, TN2, TN5 = IPv4Address("10.1.1.1"), IPv4Address("10.1.1.2"), IPv4Address("10.1.1.5")
HANDLE = bytes(range(1, 65))
PARAMS = qe.QeParams()
A = TypeVar("A")


def key(i: int) -> bytes:
    return bytes([0xA0 + i]) * 32


def route(label: int | None = 1) -> tuple[ero.Subobject, ...]:
    """tn1:1 [label] QE tn2:2 tn5:1 QE (an ERO as the PCE gives it, shortened)."""
    lab: tuple[ero.Subobject, ...] = () if label is None else (ero.Label(ero.lambda_label(label)),)
    qe_sub = ero.QeSubobject.from_params(PARAMS)
    return (
        ero.Unnumbered(TN1, 1),
        *lab,
        qe_sub,
        ero.Unnumbered(TN2, 2),
        ero.Unnumbered(TN5, 1),
        qe_sub,
    )


def lsp(tunnel: int = 1, lsp_id: int = 1) -> LspKey:
    return LspKey(TN5, tunnel, TN1, TN1, lsp_id)


class Node:
    """One core and its clock; ``node(event)`` feeds it at the current time."""

    def __init__(self, router_id: IPv4Address = TN1, **kw: Any) -> None:
        kw.setdefault("free_lambdas", {1: range(1, 9)})
        self.core = QeServiceCore(name="tn1", router_id=router_id, **kw)
        self.now = 100.0
        self.log: list[Action] = []

    def __call__(self, event: Event, at: float | None = None) -> list[Action]:
        if at is not None:
            self.now = at
        out = self.core.handle(event, self.now)
        self.log += out
        return out

    def tick(self) -> list[Action]:
        at = self.core.next_timer()
        assert at is not None
        return self(Tick(), at)


def of(actions: list[Action], cls: type[A]) -> list[A]:
    return [a for a in actions if isinstance(a, cls)]


def one(actions: list[Action], cls: type[A]) -> A:
    found = of(actions, cls)
    assert len(found) == 1, (cls.__name__, actions)
    return found[0]


def head_up(
    n: Node, params: qe.QeParams = PARAMS, tunnel: int = 1
) -> tuple[str, LspKey, list[Action]]:
    """Create → PCRep → NeedQeSession → OPEN/CONNECT/GET_KEY → LspUp: the head is up."""
    out = n(Create(TN5, params, 10e9))
    sid = one(out, ServiceChanged).service_id
    n(PathReply(one(out, RequestPath).cid, True, route()))
    out = n(NeedQeSession(lsp(tunnel), TN5, params))
    out = n(EtsiReply(one(out, EtsiOpen).cid, 0, key_handle=HANDLE))
    n(EtsiReply(one(out, EtsiConnect).cid, 1))
    n(EtsiReply(one(out, EtsiGetKey).cid, 0, key_index=0, key=key(0)))
    return sid, lsp(tunnel), n(LspUp(lsp(tunnel), "head", route()))


# --- the head ----------------------------------------------------------------------------


def test_head_workflow_pcreq_create_lsp_key_session_then_path() -> None:
    n = Node()
    out = n(Create(TN5, PARAMS, 10e9))
    req = one(out, RequestPath)
    assert (req.src, req.dst, req.params, req.bandwidth) == (TN1, TN5, PARAMS, 10e9 / 8)
    s = n.core.find(one(out, ServiceChanged).service_id)
    assert (s.id, s.role, s.state) == ("1", "head", "computing")

    out = n(PathReply(req.cid, True, route()))
    assert one(out, CreateLsp) == CreateLsp(1, route(), 10e9, "qe-tn1-1")
    assert s.state == "keying" and s.labels == "pce"
    assert s.path == ["10.1.1.1", "10.1.1.2", "10.1.1.5"]

    out = n(NeedQeSession(lsp(), TN5, PARAMS))
    op = one(out, EtsiOpen)
    assert (op.destination, op.key_handle, op.key_length) == (TN5, None, 32)
    out = n(EtsiReply(op.cid, 0, key_handle=HANDLE))
    # CONNECT and GET_KEY go out together, on the handle the proxy gave
    assert [type(a) for a in out] == [EtsiConnect, EtsiGetKey]
    assert {a.key_handle for a in of(out, EtsiConnect) + of(out, EtsiGetKey)} == {HANDLE}
    conn, get = one(out, EtsiConnect), one(out, EtsiGetKey)
    assert n(EtsiReply(get.cid, 0, key_index=0, key=key(0))) == []  # CONNECT still out
    out = n(EtsiReply(conn.cid, 1))  # "peer not connected": expected at the head
    assert one(out, ToRsvp).event == QeSessionReady(lsp(), HANDLE)
    assert (s.state, s.key_index, s.key, s.key_handle) == ("signalling", 0, key(0), HANDLE)

    out = n(LspUp(lsp(), "head", (ero.Unnumbered(TN2, 1), ero.Unnumbered(TN5, 2))))
    assert s.state == "up" and s.up_at == n.now
    assert s.path == ["10.1.1.1", "10.1.1.2", "10.1.1.5"]
    assert one(out, ServiceChanged).state == "up"
    assert n.core.counters["up"] == 1 and n.core.counters["keys"] == 1
    assert n.core.next_timer() == pytest.approx(n.now + 1.0)  # refresh time 1000 ms


def test_no_key_byte_in_any_action() -> None:
    n = Node()
    head_up(n)
    for i in (1, 2, 3):
        out = n.tick()
        n(EtsiReply(one(out, EtsiGetKey).cid, 0, key_index=i, key=key(i)))
    assert n.core.find("1").key_index == 3
    keys = {key(i) for i in range(4)}
    for a in n.log:
        text = repr(a)
        assert not any(k.hex() in text or repr(k) in text for k in keys), a
    assert of(n.log, Log)


def test_pce_no_path_and_pcep_failure_fail_the_service() -> None:
    n = Node()
    out = n(Create(TN5, PARAMS))
    n(PathReply(one(out, RequestPath).cid, False, reason="unknown algorithm 99"))
    s = n.core.find("1")
    assert (s.state, s.error) == ("failed", "NO-PATH: unknown algorithm 99")
    out = n(Create(TN5, PARAMS))
    n(PcepFailed(one(out, RequestPath).cid, "session down"))
    assert n.core.find("2").error == "PCEP: session down"
    assert n.core.counters["failed"] == 2


def test_cli_requests_the_core_refuses_change_nothing() -> None:
    with pytest.raises(QeServiceError, match="no PCE"):
        Node(has_pce=False)(Create(TN5, PARAMS))
    n = Node()
    for bad in (Delete("7"), AddTraffic("7", 1), SetRate("7", 1.0)):
        with pytest.raises(QeServiceError, match="no QE service 7"):
            n(bad)
    n(Create(TN5, PARAMS))
    with pytest.raises(QeServiceError, match="negative"):
        n(AddTraffic("1", -1))
    assert n.core.find("1").bytes_counted == 0


# --- key refresh -------------------------------------------------------------------------


def test_time_refresh_k_at_anchor_plus_k_periods_and_a_failure_is_made_up() -> None:
    n = Node()
    p = qe.QeParams(refresh_value=100)
    sid, _, _ = head_up(n, p)
    s = n.core.find(sid)
    anchor = n.now
    assert n.core.next_timer() == pytest.approx(anchor + 0.1)
    out = n.tick()  # refresh 1: no key yet
    n(EtsiReply(one(out, EtsiGetKey).cid, 2))
    assert (s.key_index, s.refresh_failures, s.target_index) == (0, 1, 1)
    assert n.core.next_timer() == pytest.approx(anchor + 0.2)
    out = n.tick()  # refresh 2: index 1, then at once index 2 (made up)
    out = n(EtsiReply(one(out, EtsiGetKey).cid, 0, key_index=1, key=key(1)))
    out = n(EtsiReply(one(out, EtsiGetKey).cid, 0, key_index=2, key=key(2)))
    assert of(out, EtsiGetKey) == []
    assert (s.key_index, s.key, s.refresh_count) == (2, key(2), 2)
    assert [i for i, _ in s.history] == [0, 1, 2]


def test_refresh_due_while_a_get_key_is_out_runs_after_it() -> None:
    n = Node()
    sid, _, _ = head_up(n, qe.QeParams(refresh_value=100))
    s = n.core.find(sid)
    first = one(n.tick(), EtsiGetKey)
    assert of(n.tick(), EtsiGetKey) == []  # one GET_KEY at a time
    out = n(EtsiReply(first.cid, 2))  # failed, but a catch-up waits: again at once
    out = n(EtsiReply(one(out, EtsiGetKey).cid, 0, key_index=1, key=key(1)))
    n(EtsiReply(one(out, EtsiGetKey).cid, 0, key_index=2, key=key(2)))
    assert (s.key_index, s.refresh_failures) == (2, 1)


def test_volume_refresh_by_bytes_counted_and_by_rate() -> None:
    n = Node()
    sid, _, _ = head_up(n, qe.QeParams(refresh_type=2, refresh_value=1))
    s = n.core.find(sid)
    assert n.core.next_timer() is None
    assert of(n(AddTraffic(sid, MIB // 2)), EtsiGetKey) == []
    out = n(AddTraffic(sid, 3 * MIB))  # 3.5 MiB: key 3 is due
    for i in (1, 2, 3):
        out = n(EtsiReply(one(out, EtsiGetKey).cid, 0, key_index=i, key=key(i)))
    assert s.key_index == 3 and of(out, EtsiGetKey) == []
    n(SetRate(sid, 8 * MIB * 10))  # 1 MiB per 100 ms tick
    start = n.now
    out = n.tick()
    assert n.now == pytest.approx(start + 0.1) and s.bytes_counted == 4 * MIB + MIB // 2
    n(EtsiReply(one(out, EtsiGetKey).cid, 0, key_index=4, key=key(4)))
    n(SetRate(sid, 0))
    n.tick()
    assert n.core.next_timer() is None and s.key_index == 4


# --- failures ----------------------------------------------------------------------------


def test_no_key_at_the_head_closes_the_session_then_fails_252_1() -> None:
    n = Node()
    out = n(Create(TN5, PARAMS))
    n(PathReply(one(out, RequestPath).cid, True, route()))
    out = n(NeedQeSession(lsp(), TN5, PARAMS))
    out = n(EtsiReply(one(out, EtsiOpen).cid, 0, key_handle=HANDLE))
    n(EtsiReply(one(out, EtsiConnect).cid, 1))
    out = n(EtsiReply(one(out, EtsiGetKey).cid, 2))
    # what was opened is closed first; RSVP hears of the failure after the close
    assert of(out, ToRsvp) == [] and one(out, EtsiClose).key_handle == HANDLE
    out = n(EtsiReply(one(out, EtsiClose).cid, 0))
    why = "QKD_GET_KEY status 2 GK_INSUFFICIENT_KEY_AVAILABLE"
    assert one(out, ToRsvp).event == QeFailed(lsp(), why)
    n(LspDown(lsp(), "head", f"QE: {why}", (252, 1)))
    s = n.core.find("1")
    assert (s.state, s.code) == ("failed", (252, 1)) and "GK_INSUFFICIENT" in s.error
    assert n.core.counters["etsi_errors"] == 1 and n.core.counters["etsi_close"] == 1


def test_proxy_unreachable_at_open_fails_without_a_close() -> None:
    n = Node()
    n(Create(TN5, PARAMS))
    out = n(NeedQeSession(lsp(), TN5, PARAMS))
    out = n(EtsiReply(one(out, EtsiOpen).cid, None, error="proxy unreachable (timeout)"))
    assert of(out, EtsiClose) == []
    assert one(out, ToRsvp).event == QeFailed(lsp(), "QKD_OPEN: proxy unreachable (timeout)")


def test_no_proxy_at_all() -> None:
    n = Node(has_proxy=False)
    out = n(NeedQeSession(lsp(), TN5, PARAMS))
    assert one(out, ToRsvp).event == QeFailed(lsp(), NO_PROXY)


def test_rsvp_refusing_the_lsp_fails_the_service() -> None:
    n = Node()
    out = n(Create(TN5, PARAMS))
    out = n(PathReply(one(out, RequestPath).cid, True, route()))
    n(CreateLspFailed(one(out, CreateLsp).tunnel_id, "tunnel 1 is in use"))
    assert n.core.find("1").error == "RSVP: tunnel 1 is in use"


def tail_node(**kw: Any) -> Node:
    return Node(TN5, free_lambdas={1: range(1, 9)}, **kw)


def test_tail_joins_the_heads_session_and_refreshes_from_its_own_up() -> None:
    n = tail_node()
    rro = (ero.Unnumbered(TN2, 2), ero.Unnumbered(TN1, 1))  # most recent hop first
    out = n(TailJoin(QeJoin(lsp(), HANDLE, qe.QeParams(refresh_value=100)), rro))
    op = one(out, EtsiOpen)
    assert (op.destination, op.key_handle) == (TN1, HANDLE)
    s = n.core.find("10.1.1.1:1")
    assert (s.role, s.state, s.peer) == ("tail", "keying", TN1)
    assert s.path == ["10.1.1.1", "10.1.1.2", "10.1.1.5"]
    out = n(EtsiReply(op.cid, 0, key_handle=HANDLE))
    n(EtsiReply(one(out, EtsiConnect).cid, 0))
    out = n(EtsiReply(one(out, EtsiGetKey).cid, 0, key_index=0, key=key(0)))
    assert one(out, ToRsvp).event == QeSessionReady(lsp(), HANDLE)
    n(LspUp(lsp(), "tail"), at=200.0)
    assert s.state == "up" and n.core.next_timer() == pytest.approx(200.1)
    assert n.core.counters["up"] == 0  # counted at the head only


def test_tail_refused_is_252_2_and_nothing_to_close() -> None:
    n = tail_node()
    out = n(TailJoin(QeJoin(lsp(), HANDLE, PARAMS)))
    out = n(EtsiReply(one(out, EtsiOpen).cid, 5, key_handle=HANDLE))
    assert of(out, EtsiClose) == []
    why = "QKD_OPEN status 5 OPEN_CONNECT_FAILED_KSID_ALREADY_IN_USE"
    assert one(out, ToRsvp).event == QeFailed(lsp(), why)
    s = n.core.find("10.1.1.1:1")
    assert (s.state, s.code, s.error) == ("failed", (252, 2), f"ETSI 004 {why}")


def test_tail_without_key_closes_then_fails() -> None:
    n = tail_node()
    out = n(TailJoin(QeJoin(lsp(), HANDLE, PARAMS)))
    out = n(EtsiReply(one(out, EtsiOpen).cid, 0, key_handle=HANDLE))
    n(EtsiReply(one(out, EtsiConnect).cid, 0))
    out = n(EtsiReply(one(out, EtsiGetKey).cid, None, error="proxy unreachable (t)"))
    assert of(out, ToRsvp) == [] and n.core.find("10.1.1.1:1").state == "keying"
    out = n(EtsiReply(one(out, EtsiClose).cid, 0))
    assert isinstance(one(out, ToRsvp).event, QeFailed)
    assert n.core.find("10.1.1.1:1").code == (252, 2)


# --- labels ------------------------------------------------------------------------------


def test_a_pce_label_held_here_is_dropped_before_signalling() -> None:
    n = Node()
    n(LinkResources(1, (2, 3, 4, 5, 6, 7, 8)), at=100.0)  # lambda 1 is in use here
    out = n(Create(TN5, PARAMS))
    out = n(PathReply(one(out, RequestPath).cid, True, route(label=1)))
    assert one(out, CreateLsp).route == route(label=None)
    assert n.core.find("1").labels == "local" and n.core.counters["labels_local"] == 1
    out = n(Create(TN5, PARAMS))
    out = n(PathReply(one(out, RequestPath).cid, True, route(label=2)))
    assert one(out, CreateLsp).route == route(label=2)


def test_label_busy_downstream_is_retried_without_labels_up_to_four_attempts() -> None:
    n = Node()
    out = n(Create(TN5, PARAMS))
    out = n(PathReply(one(out, RequestPath).cid, True, route()))
    s = n.core.find("1")
    for attempt in (2, 3, 4):
        lsp_id = attempt - 1
        n(NeedQeSession(lsp(lsp_id=lsp_id), TN5, PARAMS))
        n(QeClose(lsp(lsp_id=lsp_id), HANDLE))
        out = n(LspDown(lsp(lsp_id=lsp_id), "head", "label set", (24, 11)))
        assert one(out, CreateLsp).route == route(label=None), attempt
        assert (s.attempts, s.labels, s.state, s.key) == (attempt, "local", "keying", None)
    out = n(LspDown(lsp(lsp_id=4), "head", "label set", (24, 11)))
    assert of(out, CreateLsp) == []
    assert (s.state, s.code) == ("failed", (24, 11))
    assert n.core.counters["label_retries"] == 3


# --- teardown ----------------------------------------------------------------------------


def test_delete_tears_down_and_the_close_follows_rsvp() -> None:
    n = Node()
    sid, key_lsp, _ = head_up(n)
    out = n(Delete(sid))
    assert one(out, DeleteLsp).tunnel_id == 1
    s = n.core.find(sid)
    assert (s.state, s.error, s.key) == ("down", "", None) and n.core.next_timer() is None
    # RSVP's teardown: QeClose, then LspDown (ignored: the service is over)
    assert one(n(QeClose(key_lsp, HANDLE)), EtsiClose).key_handle == HANDLE
    assert n(LspDown(key_lsp, "head", "deleted")) == []
    assert n(Delete(sid)) == []  # again: nothing
    with pytest.raises(QeServiceError, match="headed by"):
        t = tail_node()
        t(TailJoin(QeJoin(lsp(), HANDLE, PARAMS)))
        t(Delete("10.1.1.1:1"))


def test_delete_before_the_pce_answers() -> None:
    n = Node()
    out = n(Create(TN5, PARAMS))
    n(Delete("1"))
    assert n.core.find("1").state == "down"
    assert n(PathReply(one(out, RequestPath).cid, True, route())) == []


def test_a_key_session_ready_after_its_service_went_is_handed_back() -> None:
    n = Node()
    out = n(Create(TN5, PARAMS))
    n(PathReply(one(out, RequestPath).cid, True, route()))
    out = n(NeedQeSession(lsp(), TN5, PARAMS))
    n(Delete("1"))
    out = n(EtsiReply(one(out, EtsiOpen).cid, 0, key_handle=HANDLE))
    n(EtsiReply(one(out, EtsiConnect).cid, 1))
    out = n(EtsiReply(one(out, EtsiGetKey).cid, 0, key_index=0, key=key(0)))
    # RSVP has no such LSP any more and answers with QeClose; the service stays down
    assert one(out, ToRsvp).event == QeSessionReady(lsp(), HANDLE)
    s = n.core.find("1")
    assert (s.state, s.key) == ("down", None)


def test_shutdown_deletes_heads_and_closes_tails() -> None:
    n = Node()
    head_up(n)
    out = n(TailJoin(QeJoin(LspKey(TN1, 9, TN5, TN5, 1), HANDLE[::-1], PARAMS)))
    out = n(EtsiReply(one(out, EtsiOpen).cid, 0, key_handle=HANDLE[::-1]))
    n(EtsiReply(one(out, EtsiConnect).cid, 0))
    n(EtsiReply(one(out, EtsiGetKey).cid, 0, key_index=0, key=key(0)))
    out = n(Shutdown())
    assert one(out, DeleteLsp).tunnel_id == 1
    assert one(out, EtsiClose).key_handle == HANDLE[::-1]
    assert all(s.state == "down" and s.key is None for s in n.core.services())


def test_finished_services_stay_listed_the_newest_64() -> None:
    n = Node()
    for _ in range(70):
        out = n(Create(TN5, PARAMS))
        n(PcepFailed(one(out, RequestPath).cid, "down"))
    ids = [s.id for s in n.core.services()]
    assert ids == [str(i) for i in range(7, 71)]


# --- concurrency and TE links ------------------------------------------------------------


def test_at_most_max_keying_sessions_are_opened_at_once() -> None:
    n = Node(max_keying=2)
    opens = [of(n(NeedQeSession(lsp(t), TN5, PARAMS)), EtsiOpen) for t in (1, 2, 3)]
    assert [len(o) for o in opens] == [1, 1, 0]
    out = n(EtsiReply(opens[0][0].cid, 4))  # the first fails: the third starts
    assert isinstance(one(out, ToRsvp).event, QeFailed)
    assert one(out, EtsiOpen).cid not in (opens[0][0].cid, opens[1][0].cid)


def test_link_resources_are_coalesced_for_ospf() -> None:
    n = Node(link_batch=0.02)
    assert n(LinkResources(1, (2, 3)), at=10.0) == []
    assert n(LinkResources(1, (3,)), at=10.01) == []
    assert n.core.next_timer() == pytest.approx(10.02)
    assert n.tick() == [AdvertiseLink(1, (3,))]
    assert n.core.next_timer() is None and n.core.free[1] == frozenset({3})


# --- the key relay path (docs/qe-service.md#the-key-relay-path) --------------------------

SITE2, SITE3 = IPv4Address("10.1.1.2"), IPv4Address("10.1.1.3")


def test_the_pces_relay_path_goes_into_the_open_and_show() -> None:
    names = {TN1: "km1", SITE2: "km2", TN5: "km5"}
    n = Node(site_names=names)
    out = n(Create(TN5, PARAMS, 10e9))
    s = n.core.find(one(out, ServiceChanged).service_id)
    relay = (TN1, SITE2, TN5)
    n(PathReply(one(out, RequestPath).cid, True, route(), relay=relay))
    assert s.relay == relay
    op = one(n(NeedQeSession(lsp(), TN5, PARAMS)), EtsiOpen)
    assert (op.destination, op.key_handle, op.relay) == (TN5, None, relay)
    j = s.as_json(n.now, n.core.site_names)
    assert j["relay_path"] == ["10.1.1.1", "10.1.1.2", "10.1.1.5"]
    assert j["relay_kms"] == ["km1", "km2", "km5"]
    assert s.as_json(n.now)["relay_kms"] == ["?", "?", "?"]  # names unknown


@pytest.mark.parametrize(
    ("relay", "in_open"),
    [((), ()), ((TN1,), ()), ((TN1, TN5), (TN1, TN5))],
    ids=["none: the KM decides", "one site: no relay", "a direct link"],
)
def test_a_relay_path_of_fewer_than_two_sites_is_left_to_the_km(
    relay: tuple[IPv4Address, ...], in_open: tuple[IPv4Address, ...]
) -> None:
    n = Node()
    out = n(Create(TN5, PARAMS, 10e9))
    n(PathReply(one(out, RequestPath).cid, True, route(), relay=relay))
    assert one(n(NeedQeSession(lsp(), TN5, PARAMS)), EtsiOpen).relay == in_open


def test_the_tail_opens_without_a_relay_path_and_does_not_know_it() -> None:
    n = tail_node()
    out = n(TailJoin(QeJoin(lsp(), HANDLE, PARAMS)))
    assert one(out, EtsiOpen).relay == ()
    j = n.core.find("10.1.1.1:1").as_json(n.now)
    assert j["relay_path"] is None and j["relay_kms"] is None


def test_a_retry_opens_again_on_the_same_relay_path() -> None:
    n = Node()
    out = n(Create(TN5, PARAMS, 10e9))
    n(PathReply(one(out, RequestPath).cid, True, route(), relay=(TN1, SITE2, TN5)))
    out = n(NeedQeSession(lsp(), TN5, PARAMS))
    out = n(EtsiReply(one(out, EtsiOpen).cid, 0, key_handle=HANDLE))
    n(EtsiReply(one(out, EtsiConnect).cid, 1))
    n(EtsiReply(one(out, EtsiGetKey).cid, 0, key_index=0, key=key(0)))
    n(LspDown(lsp(), "head", "label busy", (24, 11)))
    out = n(NeedQeSession(lsp(1, 2), TN5, PARAMS))
    assert one(out, EtsiOpen).relay == (TN1, SITE2, TN5)


def test_a_refresh_without_key_is_counted_and_shown_until_one_succeeds() -> None:
    n = Node()
    sid, _, _ = head_up(n, qe.QeParams(refresh_value=100))
    s = n.core.find(sid)
    n(EtsiReply(one(n.tick(), EtsiGetKey).cid, 2))  # GK_INSUFFICIENT_KEY_AVAILABLE
    n(EtsiReply(one(n.tick(), EtsiGetKey).cid, None, error="proxy unreachable (timeout)"))
    n(EtsiReply(one(n.tick(), EtsiGetKey).cid, 3))  # another failure: not for lack of key
    assert (s.refresh_failures, s.refresh_no_key, n.core.counters["refresh_no_key"]) == (3, 2, 2)
    j = s.as_json(n.now)
    assert (j["refresh_failures"], j["refresh_no_key"]) == (3, 2)
    assert j["refresh_error"] == "QKD_GET_KEY status 3 GK_PEER_NOT_CONNECTED"
    fails = [a for a in n.log if isinstance(a, Log) and a.fields.get("event") == "refresh_fail"]
    assert [f.fields["no_key"] for f in fails] == [True, True, False] and all(
        f.warning for f in fails
    )
    assert s.state == "up" and s.key_index == 0  # still up, on its last key
    out = n(EtsiReply(one(n.tick(), EtsiGetKey).cid, 0, key_index=1, key=key(1)))
    assert s.key_index == 1 and s.as_json(n.now)["refresh_error"] is None
    assert s.refresh_no_key == 2  # the count stays
    assert of(out, EtsiGetKey)  # and it catches up with the ones missed


# --- moves: the tail follows a new LSP of the tunnel with the same handle ---------------


def _tail_up(n: Node) -> Any:
    out = n(TailJoin(QeJoin(lsp(), HANDLE, PARAMS)))
    out = n(EtsiReply(one(out, EtsiOpen).cid, 0, key_handle=HANDLE))
    n(EtsiReply(one(out, EtsiConnect).cid, 0))
    n(EtsiReply(one(out, EtsiGetKey).cid, 0, key_index=0, key=key(0)))
    n(LspUp(lsp(), "tail"))
    s = n.core.find("10.1.1.1:1")
    assert s.state == "up"
    return s


def test_tail_follows_a_move_without_an_etsi_call_and_ignores_the_old_lsps_end() -> None:
    n = tail_node()
    s = _tail_up(n)
    out = n(TailJoin(QeJoin(lsp(lsp_id=2), HANDLE, PARAMS)))
    assert one(out, ToRsvp).event == QeSessionReady(lsp(lsp_id=2), HANDLE)
    assert not of(out, EtsiOpen) and s.lsp == lsp(lsp_id=2) and s.moves == 1
    n(LspUp(lsp(lsp_id=2), "tail"))
    out = n(QeClose(lsp(), HANDLE)) + n(LspDown(lsp(), "tail", "PathTear"))
    assert not of(out, EtsiClose) and s.state == "up" and s.key == key(0)


def test_tail_falls_back_when_the_new_lsp_fails_before_it_is_up() -> None:
    n = tail_node()
    s = _tail_up(n)
    n(TailJoin(QeJoin(lsp(lsp_id=2), HANDLE, PARAMS)))
    out = n(QeClose(lsp(lsp_id=2), HANDLE)) + n(LspDown(lsp(lsp_id=2), "tail", "PathTear"))
    assert not of(out, EtsiClose) and (s.state, s.lsp) == ("up", lsp())
    # the old LSP ends later (deleted on purpose): closed at once
    out = n(QeClose(lsp(), HANDLE)) + n(LspDown(lsp(), "tail", "deleted"))
    assert one(out, EtsiClose).key_handle == HANDLE and s.state == "down"


def test_tail_holds_after_a_plain_path_tear_then_closes_when_nothing_comes() -> None:
    n = tail_node()
    s = _tail_up(n)
    out = n(QeClose(lsp(), HANDLE)) + n(LspDown(lsp(), "tail", "PathTear"))
    assert not of(out, EtsiClose) and s.state == "rerouting" and s.key == key(0)
    assert n.core.next_timer() is not None
    n.now = s.hold_until or 0.0
    out = n(Tick())
    assert one(out, EtsiClose).key_handle == HANDLE
    assert s.state == "down" and s.key is None and "no new LSP" in s.error


def test_head_not_delegated_fails_at_once_and_an_update_is_refused() -> None:
    n = Node()
    sid, first, _ = head_up(n)
    s = n.core.find(sid)
    with pytest.raises(QeServiceError, match="not delegated"):
        n(Update(s.tunnel_id, route()))
    out = n(QeClose(first, HANDLE)) + n(LspDown(first, "head", "next hop down", (24, 5)))
    assert one(out, EtsiClose).key_handle == HANDLE and s.state == "failed"


# --- setup stages (show qe-service json "stages") ----------------------------------------


def test_head_records_each_setup_stage_at_the_time_it_is_given() -> None:
    n = Node(wall_offset=1000.0)
    out = n(Create(TN5, PARAMS, 10e9), at=10.0)
    sid = one(out, ServiceChanged).service_id
    n(PathReply(one(out, RequestPath).cid, True, route()), at=10.002)
    out = n(NeedQeSession(lsp(), TN5, PARAMS), at=10.003)
    out = n(EtsiReply(one(out, EtsiOpen).cid, 0, key_handle=HANDLE), at=10.005)
    conn, get = one(out, EtsiConnect), one(out, EtsiGetKey)
    n(EtsiReply(get.cid, 0, key_index=0, key=key(0)), at=10.006)
    n(EtsiReply(conn.cid, 1), at=10.007)
    n(LspUp(lsp(), "head", route()), at=10.011)
    s = n.core.find(sid)
    want = [
        ("pcreq", 0.0),
        ("pcrep", 2.0),
        ("session_asked", 3.0),
        ("etsi_open", 3.0),
        ("etsi_opened", 5.0),
        ("etsi_got_key", 6.0),
        ("etsi_connected", 7.0),
        ("path_out", 7.0),
        ("up", 11.0),
    ]
    got = s.as_json(11.0)["stages"]
    assert [(x["stage"], x["t_ms"]) for x in got] == want
    assert got[0]["at"] == pytest.approx(1010.0) and got[-1]["at"] == pytest.approx(1010.011)
    assert s.as_json(11.0)["setup_ms"] == 11.0


def test_tail_stages_start_when_the_path_comes_in_even_if_keying_queues() -> None:
    n = Node(TN5, max_keying=1)
    out1 = n(TailJoin(QeJoin(lsp(1), HANDLE, PARAMS)), at=50.0)
    out2 = n(TailJoin(QeJoin(lsp(2), bytes(64), PARAMS)), at=50.001)
    assert of(out2, EtsiOpen) == []  # the second waits for the first
    out = n(EtsiReply(one(out1, EtsiOpen).cid, 0, key_handle=HANDLE), at=50.002)
    n(EtsiReply(one(out, EtsiConnect).cid, 0), at=50.003)
    out = n(EtsiReply(one(out, EtsiGetKey).cid, 0, key_index=0, key=key(0)), at=50.004)
    second = one(out, EtsiOpen)  # the first is keyed: the second opens now
    n(LspUp(lsp(1), "tail"), at=50.005)
    s2 = n.core.find("10.1.1.1:2")
    stages = {x["stage"]: x["t_ms"] for x in s2.as_json(51.0)["stages"]}
    assert stages == {"path_in": 0.0, "etsi_open": 3.0}  # 3 ms queued behind max_keying
    assert second.key_handle == bytes(64)
    s1 = n.core.find("10.1.1.1:1")
    names = [x["stage"] for x in s1.as_json(51.0)["stages"]]
    assert names == [
        "path_in",
        "etsi_open",
        "etsi_opened",
        "etsi_connected",
        "etsi_got_key",
        "resv_out",
        "up",
    ]


# --- the data plane (docs/dataplane.md) ----------------------------------------------------


def test_keys_go_to_the_data_plane_at_keying_and_each_refresh_then_stop() -> None:
    n = Node()
    sid, key_lsp, _ = head_up(n, qe.QeParams(refresh_value=100))
    keys = of(n.log, DataplaneKey)
    assert [(k.lsp, k.service_id, k.index, k.algorithm) for k in keys] == [(key_lsp, sid, 0, 10)]
    assert keys[0].key == key(0) and key(0).hex() not in repr(keys[0])
    out = n.tick()
    out = n(EtsiReply(one(out, EtsiGetKey).cid, 0, key_index=1, key=key(1)))
    assert (one(out, DataplaneKey).index, one(out, DataplaneKey).key) == (1, key(1))
    out = n(Delete(sid))
    assert one(out, DataplaneStop) == DataplaneStop(key_lsp, sid)


def test_dataplane_traffic_drives_volume_refresh() -> None:
    n = Node()
    sid, _, _ = head_up(n, qe.QeParams(refresh_type=2, refresh_value=1))
    s = n.core.find(sid)
    assert of(n(DataplaneTraffic(sid, MIB - 1)), EtsiGetKey) == []
    out = n(DataplaneTraffic(sid, 1))
    assert one(out, EtsiGetKey).index == 1
    assert s.bytes_counted == s.bytes_dataplane == MIB
    assert s.as_json(n.now)["bytes_dataplane"] == MIB
    assert n(DataplaneTraffic("no-such-service", 5)) == []  # gone meanwhile: ignored


def test_a_head_with_a_data_plane_asks_for_bidirectional_lsps_for_layers_1_and_2() -> None:
    for layer, bidir in ((1, True), (2, True)):
        n = Node(has_dataplane=True)
        out = n(Create(TN5, qe.QeParams(enc_layer=layer), 0.0))
        out = n(PathReply(one(out, RequestPath).cid, True, route()))
        assert one(out, CreateLsp).bidirectional is bidir
    n = Node()  # no data plane here: no frame flows, one direction is enough
    out = n(Create(TN5, PARAMS, 0.0))
    assert (
        one(n(PathReply(one(out, RequestPath).cid, True, route())), CreateLsp).bidirectional
        is False
    )


def test_layer_3_is_refused_at_a_head_and_a_tail_with_a_data_plane() -> None:
    l3 = qe.QeParams(enc_layer=3)
    with pytest.raises(QeServiceError, match="layer 3"):
        Node(has_dataplane=True)(Create(TN5, l3, 0.0))
    n = tail_node(has_dataplane=True)
    out = n(TailJoin(QeJoin(lsp(), HANDLE, l3)))
    assert of(out, EtsiOpen) == []
    ev = one(out, ToRsvp).event
    assert isinstance(ev, QeFailed) and "layer 3 (IP) encryption is not built" in ev.reason
    s = n.core.find("10.1.1.1:1")
    assert (s.state, s.code) == ("failed", (252, 2))


def test_only_the_service_holding_the_access_port_is_bidirectional() -> None:
    # port mode: one service at a time carries the access port's frames, so a burst of
    # layer-2 services does not take a reverse lambda per link each (docs/dataplane.md)
    n = Node(has_dataplane=True)
    bidir = []
    for _ in range(3):
        out = n(Create(TN5, qe.QeParams(enc_layer=2), 0.0))
        out = n(PathReply(one(out, RequestPath).cid, True, route()))
        bidir.append(one(out, CreateLsp).bidirectional)
    assert bidir == [True, False, False]


# --- pipelined keying (pipeline_keying=True, as node agents run it) ----------------------

RELAY3 = (TN1, TN2, TN5)


def fast(**kw: Any) -> Node:
    handles = iter(bytes([i]) * 64 for i in range(1, 100))
    return Node(pipeline_keying=True, random_bytes=lambda n: next(handles)[:n], **kw)


def test_pipelined_head_keys_while_the_pcreq_is_out_and_signals_at_once() -> None:
    n = fast()
    out = n(Create(TN5, PARAMS, 10e9))
    req = one(out, RequestPath)
    op, conn, get = one(out, EtsiOpen), one(out, EtsiConnect), one(out, EtsiGetKey)
    own = bytes([1]) * 64  # the head names the key_handle: CONNECT and GET_KEY need no answer
    assert (op.destination, op.key_handle, op.relay) == (TN5, own, ())
    assert conn.key_handle == get.key_handle == own
    s = n.core.find("1")
    assert n(EtsiReply(op.cid, 0, key_handle=own)) == []
    assert n(EtsiReply(conn.cid, 1)) == []
    out = n(EtsiReply(get.cid, 0, key_index=0, key=key(0)))
    assert of(out, ToRsvp) == [] and s.key is None  # kept until RSVP asks for it
    out = n(PathReply(req.cid, True, route(), relay=(TN1, TN5)), at=100.004)  # a direct link
    assert one(out, CreateLsp).tunnel_id == 1
    out = n(NeedQeSession(lsp(), TN5, PARAMS))
    assert one(out, ToRsvp).event == QeSessionReady(lsp(), own)
    assert of(out, EtsiOpen) == [] and (s.state, s.key_index, s.key) == ("signalling", 0, key(0))
    n(LspUp(lsp(), "head", route()))
    assert s.state == "up" and n.core.counters["keys"] == 1
    assert next(x for x in s.stages if x.startswith("etsi")) == "etsi_open"
    assert s.stages["etsi_open"] == s.stages["pcreq"] < s.stages["pcrep"]


def test_pipelined_head_still_keying_sends_path_at_once_and_is_up_once_keyed() -> None:
    n = fast()
    out = n(Create(TN5, PARAMS))
    op, conn, get = one(out, EtsiOpen), one(out, EtsiConnect), one(out, EtsiGetKey)
    n(PathReply(one(out, RequestPath).cid, True, route()))
    s = n.core.find("1")
    out = n(NeedQeSession(lsp(), TN5, PARAMS))  # the handle is ours: Path goes now
    assert one(out, ToRsvp).event == QeSessionReady(lsp(), op.key_handle)
    assert of(out, EtsiOpen) == [] and (s.state, s.key) == ("signalling", None)
    out = n(LspUp(lsp(), "head", route()))  # the Resv came before the key
    assert s.state == "signalling" and of(out, ServiceChanged) == []
    n(EtsiReply(op.cid, 0, key_handle=op.key_handle))
    n(EtsiReply(get.cid, 0, key_index=0, key=key(0)))
    out = n(EtsiReply(conn.cid, 1))
    assert of(out, ToRsvp) == []  # no second QeSessionReady
    assert (s.state, s.key_index, s.key) == ("up", 0, key(0))
    assert one(out, ServiceChanged).state == "up" and n.core.counters["up"] == 1


def test_pipelined_head_key_failing_after_its_path_fails_the_lsp_252_1() -> None:
    n = fast()
    out = n(Create(TN5, PARAMS))
    op, conn, get = one(out, EtsiOpen), one(out, EtsiConnect), one(out, EtsiGetKey)
    n(PathReply(one(out, RequestPath).cid, True, route()))
    n(NeedQeSession(lsp(), TN5, PARAMS))
    n(EtsiReply(op.cid, 0, key_handle=op.key_handle))
    n(EtsiReply(conn.cid, 1))
    out = n(EtsiReply(get.cid, 2))  # no key: the session is closed, then RSVP told
    out = n(EtsiReply(one(out, EtsiClose).cid, 0))
    failed = one(out, ToRsvp).event
    assert isinstance(failed, QeFailed) and failed.lsp == lsp()
    n(LspDown(lsp(), "head", "QE: no key", (252, 1)))
    s = n.core.find("1")
    assert s.state == "failed" and "GK_INSUFFICIENT_KEY_AVAILABLE" in s.error


def test_pipelined_head_relay_path_closes_the_early_session_and_opens_with_it() -> None:
    n = fast()
    out = n(Create(TN5, PARAMS))
    early = one(out, EtsiOpen)
    n(PathReply(one(out, RequestPath).cid, True, route(), relay=RELAY3))
    out = n(NeedQeSession(lsp(), TN5, PARAMS))
    op = one(out, EtsiOpen)  # the relay path: the key manager names the handle
    assert (op.key_handle, op.relay) == (None, RELAY3) and of(out, EtsiConnect) == []
    # the early session is closed at once (the CLOSE follows its OPEN); its key never used
    assert one(out, EtsiClose).key_handle == early.key_handle
    n(EtsiReply(early.cid, 0, key_handle=early.key_handle))
    gets = [a for a in n.log if isinstance(a, EtsiGetKey) and a.key_handle == early.key_handle]
    conns = [a for a in n.log if isinstance(a, EtsiConnect) and a.key_handle == early.key_handle]
    n(EtsiReply(conns[0].cid, 1))
    out = n(EtsiReply(gets[0].cid, 0, key_index=0, key=key(0)))
    assert of(out, EtsiClose) == [] and of(out, ToRsvp) == []  # not closed twice
    out = n(EtsiReply(op.cid, 0, key_handle=HANDLE))
    n(EtsiReply(one(out, EtsiConnect).cid, 1))
    out = n(EtsiReply(one(out, EtsiGetKey).cid, 0, key_index=0, key=key(5)))
    assert one(out, ToRsvp).event == QeSessionReady(lsp(), HANDLE)
    assert n.core.find("1").key == key(5)


def test_pipelined_head_no_path_or_delete_closes_the_early_session() -> None:
    n = fast()
    out = n(Create(TN5, PARAMS))
    op, conn, get = one(out, EtsiOpen), one(out, EtsiConnect), one(out, EtsiGetKey)
    for a, r in ((op, EtsiReply(op.cid, 0, key_handle=op.key_handle)), (conn, None)):
        n(r or EtsiReply(a.cid, 1))
    n(EtsiReply(get.cid, 0, key_index=0, key=key(0)))
    out = n(PathReply(one(n.log, RequestPath).cid, False, reason="no route"))
    assert one(out, EtsiClose).key_handle == op.key_handle
    assert n.core.find("1").state == "failed"
    out = n(Create(TN5, PARAMS))  # deleted before anything is answered: closed at once
    op2, conn2, get2 = one(out, EtsiOpen), one(out, EtsiConnect), one(out, EtsiGetKey)
    assert one(n(Delete("2")), EtsiClose).key_handle == op2.key_handle
    n(EtsiReply(op2.cid, 0, key_handle=op2.key_handle))
    n(EtsiReply(conn2.cid, 4))
    out = n(EtsiReply(get2.cid, 4))  # the proxy answered: closed, nothing asked again
    assert of(out, EtsiClose) == of(out, EtsiGetKey) == of(out, EtsiConnect) == []


def test_pipelined_head_early_failure_opens_again_when_rsvp_asks() -> None:
    n = fast()
    out = n(Create(TN5, PARAMS))
    op = one(out, EtsiOpen)
    n(EtsiReply(op.cid, None, error="proxy unreachable"))
    n(PathReply(one(out, RequestPath).cid, True, route()))
    out = n(NeedQeSession(lsp(), TN5, PARAMS))
    # the usual way: the proxy names the handle (a key manager that relays refuses ours)
    assert one(out, EtsiOpen).key_handle is None and of(out, EtsiGetKey) == []


def test_pipelined_tail_joins_with_open_connect_get_key_at_once() -> None:
    n = fast(router_id=TN5)
    out = n(TailJoin(QeJoin(lsp(), HANDLE, PARAMS)))
    op, conn, get = one(out, EtsiOpen), one(out, EtsiConnect), one(out, EtsiGetKey)
    assert op.key_handle == conn.key_handle == get.key_handle == HANDLE
    n(EtsiReply(get.cid, 0, key_index=0, key=key(0)))  # answers in any order
    n(EtsiReply(conn.cid, 0))
    out = n(EtsiReply(op.cid, 0, key_handle=HANDLE))
    assert one(out, ToRsvp).event == QeSessionReady(lsp(), HANDLE)


def test_pipelined_calls_that_overtook_the_open_are_asked_again_once() -> None:
    n = fast(router_id=TN5)
    out = n(TailJoin(QeJoin(lsp(), HANDLE, PARAMS)))
    op, conn, get = one(out, EtsiOpen), one(out, EtsiConnect), one(out, EtsiGetKey)
    n(EtsiReply(conn.cid, 4))  # the proxy did not know the handle yet
    n(EtsiReply(get.cid, 4))
    out = n(EtsiReply(op.cid, 0, key_handle=HANDLE))
    conn, get = one(out, EtsiConnect), one(out, EtsiGetKey)
    n(EtsiReply(conn.cid, 0))
    out = n(EtsiReply(get.cid, 4))  # again: the join fails (no third try)
    assert one(out, EtsiClose).key_handle == HANDLE
    out = n(EtsiReply(one(out, EtsiClose).cid, 0))
    assert isinstance(one(out, ToRsvp).event, QeFailed)
    assert "QKD_GET_KEY status 4" in n.core.find("10.1.1.1:1").error
