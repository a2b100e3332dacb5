"""Per-packet CPU: microseconds to decode, encode and handle each message type.

Run: ``.venv/bin/python bench/codecs.py [--quick] [--only ospf|pcep|rsvp] [--repeat N]``.

Three figures per message, where they apply:

- ``decode``: bytes to the message object (OSPF: the packet, its LSAs framed and their
  bodies left undecoded, as the router takes them; ``... body`` rows decode an LSA body;
  the process-wide cache of decoded LSAs keeps only LSAs held elsewhere, so these are
  first decodes; RSVP: the caches of decoded and encoded objects are cleared before each,
  so these are first decodes and encodes too);
- ``encode``: the message object to bytes (checksums and lengths computed);
- ``handle``: the sans-I/O core taking the message as received on its socket, decode
  included, in a steady state set up in memory: an OSPF router with a Full neighbour
  (Hello; LS Update with a new instance of one TE LSA, or the same four LSAs again, which
  the router acknowledges; LS Ack), an RSVP node with an LSP up (a Path or Resv refresh
  sent whole; a Hello request, answered), a PCEP session Up (a Keepalive). The ``tx``
  rows are what the core does to send: the timer that emits a Hello or a Keepalive.

Timing is CPU time of this process (``time.process_time``, so other processes on a
shared machine do not count), the best of ``--repeat`` runs (default 50, 5 with
``--quick``) of a batch sized to last about 2 ms (5 ms with ``--quick``): the minimum is
the figure least disturbed by other work (``timeit``'s advice; caches and clock speed are
still shared). Compare runs made on the same machine only.

Each protocol contributes a section: a function returning :class:`Case` rows. To add one,
write ``def xxx_cases() -> list[Case]`` and add it to :data:`SECTIONS`.
"""

from __future__ import annotations

import argparse
import itertools
import time
import timeit
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

Fn = Callable[[], object]


@dataclass
class Case:
    """One row: the message's bytes and the three ways of timing it (None: not timed).

    ``limit`` caps the calls of ``handle`` (its inputs are used up: new LSA instances)."""

    label: str
    raw: bytes
    encode: Fn | None = None
    decode: Fn | None = None
    handle: Fn | None = None
    limit: int = 0


def codec(
    label: str, obj: Any, decode: Callable[[bytes], object], forget: Fn | None = None
) -> Case:
    """A row timing ``obj.encode()`` and ``decode`` of its bytes; ``forget`` is called
    before each encode and decode (to time a message never encoded or decoded before)."""
    raw = obj.encode()
    decode(raw)  # it must decode before we time it
    if forget is None:
        return Case(label, raw, obj.encode, lambda: decode(raw))

    def encode() -> bytes:
        forget()
        return bytes(obj.encode())

    def decode_first() -> object:
        forget()
        return decode(raw)

    return Case(label, raw, encode, decode_first)


# ---------------------------------------------------------------- OSPF

OA, OB = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")
#: the advertising routers of the LSAs B floods to A: new instances, and the same again
OX, OY = IPv4Address("10.0.9.9"), IPv4Address("10.0.9.10")


def ospf_pair() -> tuple[Any, Any, float, bytes]:
    """Routers A and B on a point-to-point link, run on a virtual clock until both are
    Full; returns them, the time, and the last Hello B sent."""
    from gmpls.core import Tick
    from gmpls.ospf.events import InterfaceConfig, InterfaceUp, Received, Send
    from gmpls.ospf.fsm import NbrState
    from gmpls.ospf.router import OspfRouter

    routers = {OA: OspfRouter(OA), OB: OspfRouter(OB)}
    other = {OA: OB, OB: OA}
    hello = b""
    queue: list[tuple[IPv4Address, Any]] = []

    def run(rid: IPv4Address, event: Any, now: float) -> None:
        nonlocal hello
        for a in routers[rid].handle(event, now):
            if isinstance(a, Send):
                if rid == OB and a.data[1] == 1:
                    hello = a.data
                queue.append((other[rid], Received("p2p", a.data, rid, a.dst)))

    for rid in routers:
        conf = InterfaceConfig("p2p", IPv4Interface(f"{rid}/30"), "point-to-point")
        run(rid, InterfaceUp(conf), 0.0)
    now = 0.0
    while now < 60.0:
        while queue:
            rid, ev = queue.pop(0)
            run(rid, ev, now)
        full = all(n.state == NbrState.FULL for r in routers.values() for _, n in r.neighbors())
        if full and hello:
            return routers[OA], routers[OB], now, hello
        now += 0.05
        for rid, r in routers.items():
            t = r.next_timer()
            if t is not None and t <= now:
                run(rid, Tick(), now)
    raise AssertionError("the OSPF pair did not reach Full")


def _lsu_from_b(lsas: tuple[Any, ...]) -> bytes:
    from gmpls.ospf import packet

    return packet.Packet(OB, IPv4Address("0.0.0.0"), packet.LSUpdate(lsas)).encode()


def _rebuilt(lsa: Any, adv: IPv4Address, seq: int) -> Any:
    from gmpls.ospf.lsa import LSA

    h = lsa.header
    return LSA.build(h.ls_type, h.ls_id, adv, seq, lsa.body, options=h.options)


def ospf_handle_cases(quick: bool) -> list[Case]:
    from gmpls.core import Tick
    from gmpls.ospf import examples as ex
    from gmpls.ospf import packet
    from gmpls.ospf.constants import ALL_SPF_ROUTERS, INITIAL_SEQUENCE
    from gmpls.ospf.events import Received

    a, _, now, hello = ospf_pair()
    rx = Received
    cases = [
        Case(
            "OSPF Hello (Full neighbour)",
            hello,
            handle=lambda: a.handle(rx("p2p", hello, OB, ALL_SPF_ROUTERS), now),
        )
    ]
    # new instances of one TE link LSA, MinLSArrival (1 s) apart
    n_new = 400 if quick else 2500
    link = ex.te_link_lsa()
    news = [_lsu_from_b((_rebuilt(link, OX, INITIAL_SEQUENCE + i),)) for i in range(1, n_new + 1)]
    times: Iterator[float] = itertools.count(now + 1.0, 1.1)
    feed = iter(news)
    cases.append(
        Case(
            "OSPF LS Update (1 TE LSA, new instance)",
            news[0],
            handle=lambda: a.handle(rx("p2p", next(feed), OB, ALL_SPF_ROUTERS), next(times)),
            limit=n_new,
        )
    )
    four = tuple(_rebuilt(x, OY, INITIAL_SEQUENCE) for x in ex.ls_update().body.lsas)
    dup = _lsu_from_b(four)
    t_dup = now + 1.1 * (n_new + 2)
    a.handle(rx("p2p", dup, OB, ALL_SPF_ROUTERS), t_dup)
    cases.append(
        Case(
            "OSPF LS Update (4 LSAs again: acked)",
            dup,
            handle=lambda: a.handle(rx("p2p", dup, OB, ALL_SPF_ROUTERS), t_dup + 2),
        )
    )
    ack = packet.Packet(OB, IPv4Address("0.0.0.0"), packet.LSAck(tuple(x.header for x in four)))
    ack_raw = ack.encode()
    cases.append(
        Case(
            "OSPF LS Ack (4 headers)",
            ack_raw,
            handle=lambda: a.handle(rx("p2p", ack_raw, OB, ALL_SPF_ROUTERS), t_dup + 2),
        )
    )
    c, _, c_now, _ = ospf_pair()  # a router of its own: no timer but the Hello's is due
    iface = c.interfaces["p2p"]

    def hello_tx() -> object:
        iface.hello_at = c_now  # due: the Tick sends one
        return c.handle(Tick(), c_now)

    cases.append(Case("OSPF Hello tx (timer)", hello, handle=hello_tx))
    return cases


def ospf_cases(quick: bool) -> list[Case]:
    from gmpls.ospf import examples as ex
    from gmpls.ospf import lsa, packet

    ri = ex.ri_lsa()

    def build_ri() -> bytes:
        # originate from scratch: body encode + Fletcher checksum
        return lsa.LSA.build(10, ri.header.ls_id, ex.TN1, 1, ri.body, options=0x42).encode()

    def body_of(raw: bytes) -> object:
        # checksum, header and the body itself (a first decode each time: nothing holds
        # the LSA, so the process-wide cache of decoded LSAs does not keep it)
        return lsa.LSA.decode(raw).body

    te_raw = ex.te_link_lsa().encode()
    return [
        codec("OSPF Hello", ex.hello(), packet.decode),
        codec("OSPF DD (3 headers)", ex.dd(), packet.decode),
        codec("OSPF LS Request", ex.ls_request(), packet.decode),
        codec("OSPF LS Update (RI 0x12 + 3 TE LSAs)", ex.ls_update(), packet.decode),
        codec("OSPF LS Ack", ex.ls_ack(), packet.decode),
        Case("OSPF RI LSA originate / body", build_ri(), build_ri, lambda: body_of(build_ri())),
        Case("OSPF TE Link LSA / body", te_raw, ex.te_link_lsa().encode, lambda: body_of(te_raw)),
        *ospf_handle_cases(quick),
    ]


# ---------------------------------------------------------------- PCEP


def pcep_up() -> tuple[Any, Any, float]:
    """A PCC and a PCE session, Up, over an in-memory pipe."""
    from gmpls.pcep import events as E
    from gmpls.pcep.session import Role, Session

    pcc, pce = Session(Role.PCC), Session(Role.PCE)
    queue: list[tuple[Any, Any]] = [(pcc, E.ConnectionMade()), (pce, E.ConnectionMade())]
    while queue:
        s, ev = queue.pop(0)
        peer = pce if s is pcc else pcc
        queue += [(peer, E.Received(a.data)) for a in s.handle(ev, 0.0) if isinstance(a, E.Send)]
    assert pcc.is_up and pce.is_up
    return pcc, pce, 1.0


def pcep_cases(quick: bool) -> list[Case]:
    """PCEP (RFC 5440): the paper's Open, PCReq with the Fig. 8 QE metrics, PCRep with the
    Fig. 9 ERO, and the QE parameters read back from the metrics; a Keepalive received and
    sent by an Up session."""
    from gmpls.core import Tick
    from gmpls.pcep import events as E
    from gmpls.pcep import examples as ex
    from gmpls.pcep.messages import Keepalive, PCReq, decode_message
    from gmpls.pcep.qemetrics import qe_params_from_metrics

    def qe_from_pcreq(raw: bytes) -> object:
        msg = decode_message(raw)
        assert isinstance(msg, PCReq)
        return qe_params_from_metrics(msg.requests[0].metrics)

    pcc, pce, now = pcep_up()
    ka = Keepalive().encode()

    def keepalive_tx() -> object:
        pcc._keepalive_at = now  # due: the Tick sends one
        return pcc.handle(Tick(), now)

    return [
        codec("PCEP Open", ex.paper_open(), decode_message),
        codec("PCEP PCReq (Fig. 8 QE metrics)", ex.paper_pcreq(), decode_message),
        codec("PCEP PCReq -> QeParams", ex.paper_pcreq(), qe_from_pcreq),
        codec("PCEP PCRep (Fig. 9 ERO)", ex.paper_pcrep(), decode_message),
        Case(
            "PCEP Keepalive",
            ka,
            Keepalive().encode,
            lambda: decode_message(ka),
            lambda: pce.handle(E.Received(ka), now),
        ),
        Case("PCEP Keepalive tx (timer)", ka, handle=keepalive_tx),
    ]


# ---------------------------------------------------------------- RSVP

RA, RB = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")


@dataclass(frozen=True)
class _Link:
    local_if: int
    remote_router_id: IPv4Address
    remote_if: int
    remote_control: IPv4Address
    lambdas: tuple[int, ...]


def rsvp_up() -> tuple[Any, Any, bytes]:
    """Head A and tail B with one LSP up and acknowledged, Hellos exchanged; returns them
    and a Hello request from B."""
    from gmpls import ero
    from gmpls.core import Tick
    from gmpls.rsvp import events as E
    from gmpls.rsvp.core import RsvpCore

    cores = {
        RA: RsvpCore(RA, RA, [_Link(1, RB, 1, RB, (1, 2))], name="A"),
        RB: RsvpCore(RB, RB, [_Link(1, RA, 1, RA, (1, 2))], name="B", instance=2),
    }
    route = [ero.Unnumbered(RA, 1), ero.Label(ero.lambda_label(1)), ero.Ipv4Prefix(RB, 32)]
    queue = [(RA, a) for a in cores[RA].handle(E.CreateLsp(1, route), 0.0)]
    hello = b""
    for t in (0.0, 0.5):
        queue += [(RB, a) for a in cores[RB].handle(Tick(), t)]
        queue += [(RA, a) for a in cores[RA].handle(Tick(), t)]
        while queue:
            src, a = queue.pop(0)
            if isinstance(a, E.Send):
                if src == RB and a.data[1] == 20 and a.data[8 + 3] == 1:  # HELLO REQUEST
                    hello = a.data
                queue += [(a.dst, b) for b in cores[a.dst].handle(E.Received(src, a.data), t)]
    a_core, b_core = cores[RA], cores[RB]
    assert len(b_core.psbs) == 1 and not a_core.pending and hello
    for c in cores.values():
        for n in c.neighbors.values():
            n.rr_capable = False  # no refresh reduction: refreshes are sent whole
    return a_core, b_core, hello


def refresh_tx(core: Any, resv: bool) -> bytes:
    """Make ``core``'s Path (or Resv) refresh due, run its timer; the bytes it sent."""
    from gmpls.core import Tick
    from gmpls.rsvp import events as E

    (psb,) = core.psbs.values()
    state = core.rsbs[psb.key] if resv else psb
    state.next_refresh = 0.9
    core._schedule(psb.key)
    (sent,) = [a.data for a in core.handle(Tick(), 0.9) if isinstance(a, E.Send)]
    return bytes(sent)


def rsvp_cases(quick: bool) -> list[Case]:
    """RSVP-TE (gmpls/rsvp): the paper's Path tn1 -> tn2 and Resv, and the other messages;
    a Path, a Resv and a Hello handled by a node with an LSP up."""
    from gmpls.rsvp import events as E
    from gmpls.rsvp import examples as ex
    from gmpls.rsvp import message, objects

    titles = {
        "path": "RSVP Path (Fig. 9 ERO, QE session ID)",
        "resv": "RSVP Resv (SE, FLOWSPEC, LABEL, RRO)",
        "path_err": "RSVP PathErr (IF_ID ERROR_SPEC)",
        "resv_err": "RSVP ResvErr",
        "path_tear": "RSVP PathTear",
        "resv_tear": "RSVP ResvTear",
        "resv_conf": "RSVP ResvConf",
        "hello": "RSVP Hello",
        "notify": "RSVP Notify",
        "ack": "RSVP Ack (RFC 2961)",
        "srefresh": "RSVP Srefresh (ACK, MESSAGE_ID_LIST of 3)",
        "bundle": "RSVP Bundle (Resv + Ack with a NACK)",
    }

    # the figures are of a message encoded or decoded for the first time: the objects of
    # one sent or received again are not encoded or decoded again (the refresh rows)
    def forget() -> None:
        message._ENCODED.clear()
        objects._ENCODED_OBJ.clear()
        objects._DECODED.clear()

    cases = [
        codec(titles.get(k, f"RSVP {k}"), m, message.decode, forget)
        for k, m in ex.all_examples().items()
    ]
    a, b, hello = rsvp_up()
    path, resv = refresh_tx(a, resv=False), refresh_tx(b, resv=True)
    return [
        *cases,
        Case("RSVP Path refresh (tail)", path, handle=lambda: b.handle(E.Received(RA, path), 0.9)),
        Case("RSVP Resv refresh (head)", resv, handle=lambda: a.handle(E.Received(RB, resv), 0.9)),
        Case("RSVP Hello request", hello, handle=lambda: a.handle(E.Received(RB, hello), 0.9)),
        Case("RSVP Path refresh tx (timer)", path, handle=lambda: refresh_tx(a, resv=False)),
    ]


#: protocol name -> function returning its cases
SECTIONS: dict[str, Callable[[bool], list[Case]]] = {
    "ospf": ospf_cases,
    "pcep": pcep_cases,
    "rsvp": rsvp_cases,
}


def best_us(fn: Fn, repeat: int, batch_s: float, limit: int = 0) -> float:
    """Microseconds per call: the best of ``repeat`` batches of about ``batch_s`` each."""
    timer = timeit.Timer(fn, timer=time.process_time)
    number = 1
    while True:  # timeit's autorange, to batch_s
        if limit and number * (repeat + 2) >= limit:
            break
        if timer.timeit(number) >= batch_s:
            break
        number *= 2
    if limit:
        number = max(1, min(number, limit // (repeat + 2)))
    return min(timer.repeat(repeat, number)) / number * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 runs of 5 ms per figure")
    ap.add_argument("--only", choices=sorted(SECTIONS), help="one protocol")
    ap.add_argument("--repeat", type=int, help="runs per figure (the best is printed)")
    args = ap.parse_args(argv)
    repeat = args.repeat or (5 if args.quick else 50)
    batch = 0.005 if args.quick else 0.002
    print(f"{'message':44} {'bytes':>6} {'decode us':>10} {'encode us':>10} {'handle us':>10}")
    for name, section in SECTIONS.items():
        if args.only and name != args.only:
            continue
        for c in section(args.quick):
            figs = [
                "-" if fn is None else f"{best_us(fn, repeat, batch, lim):.1f}"
                for fn, lim in ((c.decode, 0), (c.encode, 0), (c.handle, c.limit))
            ]
            print(f"{c.label:44} {len(c.raw):6d} {figs[0]:>10} {figs[1]:>10} {figs[2]:>10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
