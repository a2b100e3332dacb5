"""The sans-I/O PCEP session (RFC 5440 §6, Appendix A): two sessions wired in memory with a
virtual clock, and one session fed hand-made bytes."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gmpls.core import Tick
from gmpls.pcep import examples as ex
from gmpls.pcep import messages as M
from gmpls.pcep import objects as O
from gmpls.pcep.events import (
    Action,
    CloseSession,
    ConnectionMade,
    Deliver,
    Disconnect,
    Received,
    Send,
    SendMessage,
    SessionUp,
)
from gmpls.pcep.session import Role, Session, SessionConfig, State

IP = ipaddress.IPv4Address


def sent(actions: list[Action]) -> list[Any]:
    return [M.decode_message(a.data) for a in actions if isinstance(a, Send)]


def wire(
    a: Session,
    b: Session,
    actions: list[Action],
    now: float,
    from_a: bool = True,
    from_b: Sequence[Action] = (),
) -> list[Action]:
    """Deliver every Send to the other side until quiet, in the order sent (``actions``
    from one side, then ``from_b`` from the other); return all non-Send actions."""
    others: list[Action] = []
    queue = [(from_a, x) for x in actions] + [(not from_a, x) for x in from_b]
    while queue:
        frm, act = queue.pop(0)
        if isinstance(act, Send):
            dst = b if frm else a
            queue.extend((not frm, x) for x in dst.handle(Received(act.data), now))
        else:
            others.append(act)
    return others


def establish(
    pcc_cfg: SessionConfig | None = None, pce_cfg: SessionConfig | None = None
) -> tuple[Session, Session, list[Action]]:
    pcc = Session(Role.PCC, pcc_cfg, "pce")
    pce = Session(Role.PCE, pce_cfg, "pcc")
    acts = [*pcc.handle(ConnectionMade(), 0.0)]
    acts2 = pce.handle(ConnectionMade(), 0.0)
    others = wire(pcc, pce, acts, 0.0, from_b=acts2)  # both Opens go out before any reply
    return pcc, pce, others


def test_open_keepalive_up() -> None:
    pcc, pce, others = establish()
    assert pcc.state is State.UP and pce.state is State.UP
    ups = [a for a in others if isinstance(a, SessionUp)]
    assert len(ups) == 2


def test_request_reply_and_pending() -> None:
    pcc, pce, _ = establish()
    out = wire(pcc, pce, pcc.handle(SendMessage(ex.paper_pcreq(5)), 1.0), 1.0)
    (d,) = out
    assert isinstance(d, Deliver) and d.msg == ex.paper_pcreq(5)
    assert pcc.pending == {5}
    out = wire(pce, pcc, pce.handle(SendMessage(ex.paper_pcrep(5)), 1.0), 1.0)
    (d,) = out
    assert isinstance(d, Deliver) and d.msg == ex.paper_pcrep(5)
    assert pcc.pending == set()


def test_keepalive_and_dead_timer() -> None:
    pcc, pce, _ = establish(SessionConfig(keepalive=10, deadtimer=40))
    # PCE sends keepalives every 30 s (its own keepalive); PCC its every 10 s
    assert pcc.next_timer() == 10.0
    (s,) = pcc.handle(Tick(), 10.0)
    assert isinstance(s, Send) and isinstance(s.msg, M.Keepalive)
    assert pcc.next_timer() == 20.0
    pce.handle(Received(s.data), 10.0)
    # the PCE declares the PCC dead 40 s after the last message it heard
    assert pce.next_timer() == 30.0  # its own keepalive first
    pce.handle(Tick(), 30.0)
    acts = pce.handle(Tick(), 50.0)
    assert [type(m) for m in sent(acts)] == [M.Close]
    assert sent(acts)[0].close.reason == 2
    assert isinstance(acts[-1], Disconnect) and pce.state is State.IDLE


def test_open_wait_expiry() -> None:
    pce = Session(Role.PCE, SessionConfig(open_wait=60))
    pce.handle(ConnectionMade(), 0.0)
    assert pce.next_timer() == 60.0
    assert pce.handle(Tick(), 59.0) == []
    acts = pce.handle(Tick(), 60.0)
    assert [m.codes for m in sent(acts)] == [[(1, 2)]]
    assert pce.state is State.IDLE


def test_keep_wait_expiry() -> None:
    pce = Session(Role.PCE, SessionConfig(keep_wait=60))
    pce.handle(ConnectionMade(), 0.0)
    pce.handle(Received(ex.paper_open().encode()), 1.0)
    assert pce.state is State.KEEP_WAIT and pce.next_timer() == 61.0
    acts = pce.handle(Tick(), 61.0)
    assert [m.codes for m in sent(acts)] == [[(1, 7)]]


def test_negotiation_accepts_proposal() -> None:
    """The PCC asks for keepalive 0, which this PCE refuses by configuration: the PCE
    proposes 1/4 (PCErr 1,4), the PCC re-opens with it and the session comes up."""
    pcc, pce, _others = establish(
        SessionConfig(keepalive=0, deadtimer=10), SessionConfig(accept_no_keepalive=False)
    )
    assert pcc.state is State.UP and pce.state is State.UP
    assert pcc.local_open.keepalive == 1 and pcc.local_open.deadtimer == 4
    assert pce.peer_open is not None and pce.peer_open.keepalive == 1
    assert pce.counters.errors_tx == 1 and pce.open_retry == 1


def test_keepalive_zero_with_deadtimer_accepted() -> None:
    """RFC 5440 §7.3: an Open with Keepalive 0 says the peer sends no Keepalives, and its
    DeadTimer is then ignored: accepted as it is, and no DeadTimer runs for that peer."""
    pcc, pce, _others = establish(SessionConfig(keepalive=0, deadtimer=10))
    assert pcc.state is State.UP and pce.state is State.UP
    assert pce.counters.errors_tx == 0
    assert pce.peer_open is not None and (pce.peer_open.keepalive, pce.peer_open.deadtimer) == (
        0,
        10,
    )
    # only the PCE's own keepalive timer runs: the silent PCC is never declared dead
    assert pce.next_timer() == 30.0
    for t in (30.0, 60.0, 90.0, 1000.0):
        assert [type(m) for m in sent(pce.handle(Tick(), t))] == [M.Keepalive]
    assert pce.state is State.UP
    # and the PCC, which sends none, has no keepalive timer but watches the PCE's DeadTimer
    assert pcc.next_timer() == 120.0


def test_keepalive_before_peer_open_is_refused() -> None:
    """Appendix A: a Keepalive before the peer's Open is PCErr (1, 1) and close."""
    pce = Session(Role.PCE)
    pce.handle(ConnectionMade(), 0.0)
    acts = pce.handle(Received(M.Keepalive().encode()), 0.0)
    assert [m.codes for m in sent(acts)] == [[(1, 1)]]
    assert isinstance(acts[-1], Disconnect) and pce.state is State.IDLE


def test_keepalive_after_unacceptable_open_counts() -> None:
    """Negotiation (§6.2): the peer acknowledges our Open while we refused its own; that
    Keepalive, after the peer's Open, is kept and the session comes up after its new Open."""
    pce = Session(Role.PCE, SessionConfig(accept_no_keepalive=False))
    pce.handle(ConnectionMade(), 0.0)
    a1 = pce.handle(Received(M.Open(O.OpenObject(0, 0)).encode()), 0.0)
    assert sent(a1)[0].codes == [(1, 4)]
    assert pce.handle(Received(M.Keepalive().encode()), 0.0) == []
    a2 = pce.handle(Received(M.Open(O.OpenObject(1, 4)).encode()), 0.0)
    assert [type(m) for m in sent(a2)] == [M.Keepalive] and pce.state is State.UP


def test_non_negotiable_open() -> None:
    pce = Session(Role.PCE, SessionConfig(negotiate=False))
    pce.handle(ConnectionMade(), 0.0)
    acts = pce.handle(Received(M.Open(O.OpenObject(30, 10)).encode()), 0.0)
    assert [m.codes for m in sent(acts)] == [[(1, 3)]]
    assert isinstance(acts[-1], Disconnect)


def test_second_unacceptable_open() -> None:
    pce = Session(Role.PCE)
    pce.handle(ConnectionMade(), 0.0)
    a1 = pce.handle(Received(M.Open(O.OpenObject(30, 10)).encode()), 0.0)
    assert sent(a1)[0].codes == [(1, 4)] and sent(a1)[0].open is not None
    a2 = pce.handle(Received(M.Open(O.OpenObject(30, 10)).encode()), 0.0)
    assert sent(a2)[0].codes == [(1, 5)]
    assert pce.state is State.IDLE


def test_unacceptable_proposal_from_peer() -> None:
    pcc = Session(Role.PCC)
    pcc.handle(ConnectionMade(), 0.0)
    proposal = M.PCErr.of((1, 4), open=O.OpenObject(10, 5))
    acts = pcc.handle(Received(proposal.encode()), 0.0)
    assert sent(acts)[0].codes == [(1, 6)]


@pytest.mark.parametrize(
    "first",
    [
        M.Keepalive().encode() + ex.paper_pcreq().encode(),  # a PCReq before Open
        b"\x20\x03\x00\x04",  # PCReq with no body
        b"garbage-garbage",
    ],
)
def test_non_open_before_up(first: bytes) -> None:
    pce = Session(Role.PCE)
    pce.handle(ConnectionMade(), 0.0)
    acts = pce.handle(Received(first), 0.0)
    assert sent(acts)[-1].codes == [(1, 1)]
    assert pce.state is State.IDLE


def test_byte_at_a_time_and_trailing_garbage() -> None:
    _pcc, pce, _ = establish()
    raw = ex.paper_pcreq(3).encode()
    delivered = []
    for i in range(len(raw)):
        delivered += pce.handle(Received(raw[i : i + 1]), 1.0)
    assert [type(a) for a in delivered] == [Deliver]
    acts = pce.handle(Received(b"\x60\x00\x00\x04"), 2.0)  # version 3: the stream is lost
    assert [type(m) for m in sent(acts)] == [M.Close]
    assert sent(acts)[0].close.reason == 3
    assert pce.state is State.IDLE


def test_malformed_with_code_gets_pcerr_and_session_stays() -> None:
    _pcc, pce, _ = establish()
    no_endpoints = b"\x20\x03\x00\x10" + O.RP(1).encode()
    acts = pce.handle(Received(no_endpoints), 1.0)
    assert [m.codes for m in sent(acts)] == [[(6, 3)]]
    assert [rp.request_id for rp in sent(acts)[0].blocks[0].rps] == [1]  # names the request
    assert pce.state is State.UP
    bad_object_length = b"\x20\x03\x00\x0c\x02\x12\x00\x05\x00\x00\x00\x00"
    acts = pce.handle(Received(bad_object_length), 1.0)
    assert [type(m) for m in sent(acts)] == [M.Close] and pce.state is State.IDLE


def test_one_malformed_request_does_not_spoil_the_others() -> None:
    """A PCReq of three requests, the second without END-POINTS: PCErr (6, 3) naming
    request 2, and requests 1 and 3 delivered to the PCE to be answered."""
    _pcc, pce, _ = establish()
    ep = O.EndPointsIpv4(IP("10.1.1.1"), IP("10.1.1.5"))
    raw = (
        O.RP(1).encode()
        + ep.encode()
        + O.RP(2).encode()
        + O.Bandwidth(1e6).encode()
        + O.RP(3).encode()
        + ep.encode()
    )
    acts = pce.handle(Received(b"\x20\x03" + (4 + len(raw)).to_bytes(2, "big") + raw), 1.0)
    (err,) = sent(acts)
    assert err.codes == [(6, 3)] and [rp.request_id for rp in err.blocks[0].rps] == [2]
    (d,) = [a for a in acts if isinstance(a, Deliver)]
    assert isinstance(d.msg, M.PCReq) and d.msg.rejected == ()
    assert [r.rp.request_id for r in d.msg.requests] == [1, 3]
    assert pce.state is State.UP and pce.counters.malformed == 1


def test_unknown_object_with_p_flag() -> None:
    _pcc, pce, _ = establish()
    ep = O.EndPointsIpv4(IP("10.1.1.1"), IP("10.1.1.5"))
    bad = M.Request(O.RP(1), ep, others=(O.UnknownObject(200, 1, b"", p=True),))
    optional = M.Request(O.RP(2), ep, others=(O.UnknownObject(200, 1, b"", p=False),))
    acts = pce.handle(Received(M.PCReq((bad, optional)).encode()), 1.0)
    (err,) = sent(acts)
    assert err.codes == [(3, 1)]
    assert err.blocks[0].rps[0].request_id == 1
    (d,) = [a for a in acts if isinstance(a, Deliver)]
    assert isinstance(d.msg, M.PCReq)
    assert [r.rp.request_id for r in d.msg.requests] == [2]


def test_too_many_unknown_requests_closes() -> None:
    _pcc, pce, _ = establish(pce_cfg=SessionConfig(max_unknown_requests=2))
    ep = O.EndPointsIpv4(IP("10.1.1.1"), IP("10.1.1.5"))
    msg = M.PCReq((M.Request(O.RP(1), ep, others=(O.UnknownObject(14, 1, bytes(8), p=True),)),))
    acts: list[Action] = []
    for t in range(3):
        acts = pce.handle(Received(msg.encode()), float(t))
    assert [type(m) for m in sent(acts)] == [M.PCErr, M.Close]
    assert sent(acts)[1].close.reason == 4


def test_unknown_messages_limit_per_minute() -> None:
    _pcc, pce, _ = establish()
    unk = M.UnknownMessage(99, b"").encode()
    for t in range(5):
        assert pce.handle(Received(unk), float(t)) == []
    acts = pce.handle(Received(unk), 5.0)
    assert sent(acts)[0].close.reason == 5
    # the window is a minute: five more spread over two minutes are fine
    _pcc2, pce2, _ = establish()
    for t in range(0, 600, 30):
        assert pce2.handle(Received(unk), float(t)) == []


def test_pcc_unknown_reply() -> None:
    pcc, _pce, _ = establish()
    acts = pcc.handle(Received(M.PCRep((M.Response(O.RP(77)),)).encode()), 1.0)
    assert sent(acts)[0].codes == [(8, 0)]
    assert not any(isinstance(a, Deliver) for a in acts)


def test_close_from_peer_and_local_close() -> None:
    pcc, pce, _ = establish()
    acts = pce.handle(Received(M.Close(O.CloseObject(reason=1)).encode()), 1.0)
    assert isinstance(acts[0], Disconnect) and pce.state is State.IDLE
    acts = pcc.handle(CloseSession(), 1.0)
    assert [type(m) for m in sent(acts)] == [M.Close] and pcc.state is State.IDLE
    with pytest.raises(RuntimeError):
        pcc.handle(SendMessage(ex.paper_pcreq()), 2.0)


def test_second_open_in_up_is_unexpected() -> None:
    _pcc, pce, _ = establish()
    acts = pce.handle(Received(ex.paper_open().encode()), 1.0)
    assert acts == [] and pce.counters.unknown_messages == 1


def test_frames_before_garbage_are_processed() -> None:
    """A Keepalive and garbage in one read: the Keepalive brings the session up, then the
    garbage closes it with reason 3 (not PCErr (1, 1) as if it came before Up)."""
    pce = Session(Role.PCE)
    pce.handle(ConnectionMade(), 0.0)
    pce.handle(Received(ex.paper_open().encode()), 0.0)
    acts = pce.handle(Received(M.Keepalive().encode() + b"\xff" * 8), 0.0)
    assert any(isinstance(a, SessionUp) for a in acts)
    assert [type(m) for m in sent(acts)] == [M.Close] and sent(acts)[0].close.reason == 3


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from(
                [
                    ex.paper_pcreq().encode(),
                    ex.paper_pcrep().encode(),
                    ex.paper_open().encode(),
                    M.Keepalive().encode(),
                    M.Close().encode(),
                    M.PCErr.of((1, 4), open=O.OpenObject(0, 0)).encode(),
                    b"\x20\x63\x00\x04",
                ]
            ),
        ),
        max_size=8,
    ),
    st.sampled_from([Role.PCC, Role.PCE]),
    st.booleans(),
)
def test_session_never_raises(chunks: list[bytes], role: Role, up_first: bool) -> None:
    """Any byte sequence, in any state, gives actions, never an exception (h11-style)."""
    if up_first:
        pcc, pce, _ = establish()
        s = pcc if role is Role.PCC else pce
    else:
        s = Session(role)
        s.handle(ConnectionMade(), 0.0)
    t = 1.0
    for c in chunks:
        for a in s.handle(Received(c), t):
            assert isinstance(a, (Send, Deliver, SessionUp, Disconnect))
        s.handle(Tick(), t)
        t += 7.0
    assert s.next_timer() is None or s.state is not State.IDLE
