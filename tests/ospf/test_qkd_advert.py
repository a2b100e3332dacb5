"""The QKD link advertiser core (gmpls/qkd_advert, docs/ospf-te.md#advertising-the-qkd-links)
on a virtual clock: polling the KM, hysteresis, MinLSInterval, flush, a lost KM; and its
actions fed to a real OSPF router core."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address

import pytest

from gmpls.core import Tick
from gmpls.ospf.constants import MAX_AGE, LsType
from gmpls.ospf.events import FlushOpaque, OriginateOpaque
from gmpls.ospf.qkdlink import QkdLinkTlv, qkd_link, qkd_lsa_id
from gmpls.ospf.router import OspfRouter
from gmpls.ospf.te import TeLSA
from gmpls.qkd import kmstatus as K
from gmpls.qkd_advert.core import AdvertConfig, QkdAdvertiser, change
from gmpls.qkd_advert.events import Action, Flush, KmDatagram, Note, Originate, SendKm

SITE = IPv4Address("10.1.1.1")
FAR2 = IPv4Address("10.1.1.2")
FAR6 = IPv4Address("10.1.1.6")
MIB = 1 << 20


def status(far: IPv4Address, stock: int = MIB // 2, **kw: object) -> K.LinkStatus:
    s = K.LinkStatus(far, f"km1-km{str(far)[-1]}", True, 2000, stock, MIB, 0, 0)
    return replace(s, **kw)  # type: ignore[arg-type]


class Km:
    """The KM side of the exchange: answers the core's requests with its links."""

    def __init__(self, core: QkdAdvertiser, *links: K.LinkStatus) -> None:
        self.core = core
        self.links = list(links)
        self.alive = True

    def tick(self, now: float) -> list[Action]:
        """A Tick at ``now``, the KM answering any request (the answers' actions too)."""
        out = self.core.handle(Tick(), now)
        for a in list(out):
            if isinstance(a, SendKm) and self.alive:
                req = K.decode(a.data)
                assert isinstance(req, K.LinksRequest)
                reply = K.encode(K.LinksReply(req.request_id, tuple(self.links)))
                out += self.core.handle(KmDatagram(reply), now)
        return out


def originated(actions: list[Action]) -> list[Originate]:
    return [a for a in actions if isinstance(a, Originate)]


def test_polls_and_originates_each_link_in_its_own_lsa() -> None:
    core = QkdAdvertiser(AdvertConfig(SITE))
    km = Km(core, status(FAR6), status(FAR2))
    assert core.next_timer() == 0.0
    out = km.tick(0.0)
    assert isinstance(out[0], SendKm) and K.decode(out[0].data) == K.LinksRequest(1)
    o = originated(out)
    assert [(a.ls_id, a.tlv.far_site, a.why) for a in o] == [
        (qkd_lsa_id(0), FAR2, "new"),
        (qkd_lsa_id(1), FAR6, "new"),
    ]
    assert o[0].tlv == QkdLinkTlv(SITE, FAR2, 2000, MIB // 2, MIB, True)
    assert core.next_timer() == 1.0  # the next poll
    assert originated(km.tick(1.0)) == []  # nothing changed
    assert core.counters["polls"] == 2 and core.counters["replies"] == 2


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        (500_000, 460_000, None),  # 8 %
        (500_000, 449_000, "stock"),  # 10.2 %
        (5_000, 4_000, None),  # 20 %, but under min_change_bits
        (5_000, 3_900, "stock"),
        (900, 0, "stock"),  # exhausted
        (0, 10, "stock"),  # refilling
        (0, 0, None),
    ],
)
def test_stock_hysteresis(old: int, new: int, why: str | None) -> None:
    cfg = AdvertConfig(SITE)
    sent = QkdLinkTlv(SITE, FAR2, 2000, old, MIB, True)
    assert change(sent, replace(sent, stock_bits=new), cfg) == why


def test_state_rate_buffer_changes_are_urgent() -> None:
    cfg = AdvertConfig(SITE)
    sent = QkdLinkTlv(SITE, FAR2, 2000, 1000, MIB, True)
    assert change(sent, replace(sent, up=False), cfg) == "state"
    assert change(sent, replace(sent, rate_bps=2001), cfg) == "rate"
    assert change(sent, replace(sent, buffer_bits=MIB * 2), cfg) == "buffer"
    assert change(None, sent, cfg) == "new"


def test_at_most_once_per_min_ls_interval_with_the_latest_status() -> None:
    core = QkdAdvertiser(AdvertConfig(SITE))
    km = Km(core, status(FAR2, 500_000))
    assert len(originated(km.tick(0.0))) == 1
    km.links = [status(FAR2, 400_000)]  # significant, but only 1 s after the last
    assert originated(km.tick(1.0)) == []
    assert core.links[FAR2].due == 5.0 and core.next_timer() == 2.0  # the poll comes first
    km.links = [status(FAR2, 380_000)]
    for t in (2.0, 3.0, 4.0):
        assert originated(km.tick(t)) == []
    (o,) = originated(km.tick(5.0))
    assert (o.tlv.stock_bits, o.why) == (380_000, "stock")  # the latest, not the first
    km.links = [status(FAR2, 380_000, up=False)]  # urgent, still waits MinLSInterval
    assert originated(km.tick(6.0)) == []
    assert core.links[FAR2].due == 10.0
    assert all(originated(km.tick(t)) == [] for t in (7.0, 8.0, 9.0))
    (o,) = originated(km.tick(10.0))
    assert (o.tlv.up, o.why) == (False, "state")


def test_a_change_back_inside_the_band_is_not_sent() -> None:
    core = QkdAdvertiser(AdvertConfig(SITE))
    km = Km(core, status(FAR2, 500_000))
    km.tick(0.0)
    km.links = [status(FAR2, 300_000)]
    km.tick(1.0)
    assert core.links[FAR2].due == 5.0
    km.links = [status(FAR2, 490_000)]
    km.tick(2.0)
    assert core.links[FAR2].due is None
    assert all(originated(km.tick(t)) == [] for t in (3.0, 4.0, 5.0, 6.0))


def test_never_per_key_draining_and_refilling() -> None:
    """A service drawing 256-bit keys ten times a second from a 2 kb/s link for ten
    minutes: thousands of keys, a few LSAs."""
    core = QkdAdvertiser(AdvertConfig(SITE))
    stock = MIB
    km = Km(core, status(FAR2, stock))
    n = len(originated(km.tick(0.0)))
    for step in range(1, 6001):
        stock = max(0, stock + 200 - 2560)  # per 0.1 s: refill 2000 b/s, draw 25.6 kb/s
        km.links = [status(FAR2, stock)]
        now = step / 10
        if step % 10 == 0:
            n += len(originated(km.tick(now)))
    assert stock == 0
    # 10 % steps of what is left, at most one per MinLSInterval while it drains (45 s),
    # then zero once: 11 LSAs, not 6000
    assert n <= 12, n
    assert core.links[FAR2].sent is not None and core.links[FAR2].sent.stock_bits == 0


def test_a_link_the_km_no_longer_reports_is_flushed() -> None:
    core = QkdAdvertiser(AdvertConfig(SITE))
    km = Km(core, status(FAR2), status(FAR6))
    km.tick(0.0)
    km.links = [status(FAR6)]
    out = km.tick(1.0)
    assert [a for a in out if isinstance(a, Flush)] == [Flush(qkd_lsa_id(0), FAR2)]
    assert list(core.links) == [FAR6]
    km.links = [status(FAR6), status(FAR2)]  # back: the free instance again
    (o,) = originated(km.tick(2.0))
    assert (o.ls_id, o.why) == (qkd_lsa_id(0), "new")


def test_a_lost_km_makes_every_link_down_until_it_answers() -> None:
    core = QkdAdvertiser(AdvertConfig(SITE, km_timeout=3.5))
    km = Km(core, status(FAR2))
    km.tick(0.0)
    km.alive = False
    for t in (1.0, 2.0, 3.0, 4.0):
        assert km.tick(t) == [SendKm(K.encode(K.LinksRequest(int(t) + 1)))]
    assert core.next_timer() == 4.5  # the request of 1.0 unanswered for 3.5 s
    out = km.tick(4.5)
    assert Note("km_lost", "no answer for 3.5 s") in out
    assert core.links[FAR2].due == 5.0  # down, once MinLSInterval allows
    (o,) = originated(km.tick(5.0))
    assert (o.tlv.up, o.tlv.stock_bits, o.why) == (False, MIB // 2, "km lost")
    assert not core.view()["kmReachable"]
    km.alive = True
    out = km.tick(11.0)
    assert Note("km_back") in out and originated(out)[0].tlv.up
    assert core.counters["km_lost"] == 1 and core.view()["kmReachable"]


def test_a_node_held_up_does_not_count_its_km_lost() -> None:
    """The node's own loop stalls for 10 s (no polls go out): at the first tick after it
    the poll goes, and the KM is lost only if that one stays unanswered for 3.5 s."""
    core = QkdAdvertiser(AdvertConfig(SITE, km_timeout=3.5))
    km = Km(core, status(FAR2))
    km.tick(0.0)
    km.alive = False
    assert km.tick(10.0) == [SendKm(K.encode(K.LinksRequest(2)))]
    assert core.next_timer() == 11.0 and core.counters["km_lost"] == 0
    km.alive = True
    assert not [a for a in km.tick(11.0) if isinstance(a, Note)]
    assert core.counters["km_lost"] == 0 and core.view()["kmReachable"]
    km.alive = False
    for t in (12.0, 13.0, 14.0):
        km.tick(t)
    assert Note("km_lost", "no answer for 3.5 s") in km.tick(15.5)


def test_bad_and_stale_datagrams_are_counted_and_ignored() -> None:
    core = QkdAdvertiser(AdvertConfig(SITE))
    core.handle(Tick(), 0.0)
    assert core.handle(KmDatagram(b"\x01\x81junk"), 0.1) == []
    assert core.handle(KmDatagram(K.encode(K.LinksReply(99, (status(FAR2),)))), 0.1) == []
    assert core.handle(KmDatagram(K.encode(K.LinksRequest(1))), 0.1) == []
    assert core.counters["malformed"] == 1 and core.counters["stale"] == 2
    # a KM slower than the poll: the answer to an older request still counts, once
    core.handle(Tick(), 1.0)
    late = K.encode(K.LinksReply(1, (status(FAR2),)))
    assert len(originated(core.handle(KmDatagram(late), 1.2))) == 1
    assert core.handle(KmDatagram(late), 1.3) == [] and core.counters["stale"] == 3
    with pytest.raises(TypeError):
        core.handle(object(), 2.0)  # type: ignore[arg-type]


def test_actions_drive_a_real_ospf_router() -> None:
    """What the node agent does with the actions: OriginateOpaque and FlushOpaque."""
    core = QkdAdvertiser(AdvertConfig(SITE))
    router = OspfRouter(SITE)
    km = Km(core, status(FAR2))

    def apply(actions: list[Action], now: float) -> None:
        for a in actions:
            if isinstance(a, Originate):
                router.handle(OriginateOpaque(LsType.OPAQUE_AREA, a.ls_id, TeLSA((a.tlv,))), now)
            elif isinstance(a, Flush):
                router.handle(FlushOpaque(LsType.OPAQUE_AREA, a.ls_id), now)

    apply(km.tick(0.0), 0.0)
    (lsa,) = [a for a in router.lsdb.lsas(0.0) if a.header.ls_id == qkd_lsa_id(0)]
    assert qkd_link(lsa.body) == QkdLinkTlv(SITE, FAR2, 2000, MIB // 2, MIB, True)
    seq = lsa.header.seq
    km.links = [status(FAR2, up=False)]
    for t in (1.0, 5.0):
        apply(km.tick(t), t)
    (lsa,) = [a for a in router.lsdb.lsas(5.0) if a.header.ls_id == qkd_lsa_id(0)]
    assert lsa.header.seq == seq + 1 and not qkd_link(lsa.body).up  # type: ignore[union-attr]
    km.links = []
    apply(km.tick(6.0), 6.0)
    (lsa,) = [a for a in router.lsdb.lsas(6.0) if a.header.ls_id == qkd_lsa_id(0)]
    assert lsa.header.age >= MAX_AGE


def test_keeps_the_core_contract() -> None:
    """The signatures of gmpls.core.Core; no other public method takes ``now``; events
    and actions in the events module (as tests/test_core_contract.py asks of the others)."""
    import inspect
    import typing

    from gmpls.core import Core
    from gmpls.qkd_advert import events as EV

    for name in ("handle", "next_timer"):
        got = [
            (p.name, p.kind)
            for p in inspect.signature(getattr(QkdAdvertiser, name)).parameters.values()
        ]
        want = [
            (p.name, p.kind) for p in inspect.signature(getattr(Core, name)).parameters.values()
        ]
        assert got == want, name
    hints = typing.get_type_hints(QkdAdvertiser.handle)
    assert hints["event"] == EV.Event and hints["return"] == list[EV.Action]
    assert Tick in typing.get_args(EV.Event)
    takes_now = [
        n
        for n, fn in inspect.getmembers(QkdAdvertiser, inspect.isroutine)
        if not n.startswith("_") and n != "handle" and "now" in inspect.signature(fn).parameters
    ]
    assert takes_now == []
    for cls in {*typing.get_args(EV.Event), *typing.get_args(EV.Action)} - {Tick}:
        assert cls.__module__ == EV.__name__, cls
