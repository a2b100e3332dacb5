"""The PCE over real TCP sessions on loopback: the PCC client, many sessions at once,
hostile input answered as RFC 5440 says while other sessions keep working, the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from daemonkit.pcep import LspStatus, PcepClient, PcepError
from gmpls import ero, qe
from gmpls.pcep import constants as C
from gmpls.pcep import events as E
from gmpls.pcep import examples as ex
from gmpls.pcep import messages as M
from gmpls.pcep import objects as O
from gmpls.pcep import tlv as T
from gmpls.pcep.constants import LspState
from gmpls.pcep.qemetrics import qe_params_from_metrics
from gmpls.pcep.session import SessionConfig
from gmpls.topology import load
from pce.daemon import PceDaemon, config_from_topology
from pce.lspdb import Lsp

PAPER = Path(__file__).resolve().parents[2] / "topologies" / "paper.yaml"
TN1, TN2, TN5 = IPv4Address("10.1.1.1"), IPv4Address("10.1.1.2"), IPv4Address("10.1.1.5")

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def pce() -> AsyncIterator[PceDaemon]:
    topo = load(PAPER)
    cfg = config_from_topology(
        topo, "pce", pcep_port=0, cli_port=0, bind="127.0.0.1", ted_source="static"
    )
    d = PceDaemon(topo, cfg)
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


def client(d: PceDaemon, n: int, **kw: Any) -> PcepClient:
    return PcepClient("127.0.0.1", d.server.port, local_address=f"127.0.0.{n}", **kw)


class RawPeer:
    """A hand-driven PCC: raw bytes in and out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.framer = M.Framer()
        self.queue: list[bytes] = []

    @classmethod
    async def connect(cls, d: PceDaemon, n: int) -> RawPeer:
        r, w = await asyncio.open_connection(
            "127.0.0.1", d.server.port, local_addr=(f"127.0.0.{n}", 0)
        )
        return cls(r, w)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self, timeout: float = 5.0) -> Any:
        """The next message, or None when the PCE closed the connection."""
        while not self.queue:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                return None
            self.queue.extend(self.framer.feed(data))
        return M.decode_message(self.queue.pop(0))

    async def handshake(self, keepalive: int = 30, deadtimer: int = 120) -> None:
        await self.send(M.Open(O.OpenObject(keepalive, deadtimer, 1)).encode())
        assert isinstance(await self.recv(), M.Open)
        assert isinstance(await self.recv(), M.Keepalive)
        await self.send(M.Keepalive().encode())

    async def closed(self, timeout: float = 5.0) -> bool:
        with contextlib.suppress(ConnectionError):
            while (m := await self.recv(timeout)) is not None:
                if not isinstance(m, (M.Keepalive, M.Close, M.PCErr)):
                    return False
        return True

    def close(self) -> None:
        self.writer.close()


async def test_fig9_path_over_pcep(pce: PceDaemon) -> None:
    async with client(pce, 2) as pcc:
        reply = await pcc.request(TN1, TN5, ex.PAPER_QE)
    assert reply.ok and reply.ero == ex.fig9_ero()
    assert pce.service.stats.paths == 1 and pce.service.stats.qe_requests == 1


async def test_pcep_sessions_have_nagle_off_at_both_ends(pce: PceDaemon) -> None:
    """A PCReq and its PCRep are single small writes: neither may wait for an ACK."""
    async with client(pce, 2) as pcc:
        await pcc.request(TN1, TN5, ex.PAPER_QE)
        assert pcc._writer is not None
        socks = [pcc._writer.get_extra_info("socket")]
        socks += [c.writer.get_extra_info("socket") for c in pce.server.connections.values()]
        assert len(socks) == 2
        for sock in socks:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def test_no_path_reasons_over_pcep(pce: PceDaemon) -> None:
    async with client(pce, 2) as pcc:
        r1 = await pcc.request(TN2, TN5, ex.PAPER_QE)
        r2 = await pcc.request(TN1, TN5, qe.QeParams(algorithm=42))
        r3 = await pcc.request(TN1, IPv4Address("10.9.9.9"))
    assert not r1.ok and r1.reason.startswith("source_not_qe_capable")
    assert r1.no_path is not None and r1.no_path.constraints_included
    assert [m.metric_type for m in r1.response.attributes.metrics] == [255, 254, 253, 252]
    assert r2.reason.startswith("unknown_algorithm") and "42" in r2.reason
    assert r3.no_path is not None and r3.no_path.vector == 0x2  # unknown destination


async def test_several_requests_in_one_pcreq_and_many_sessions(pce: PceDaemon) -> None:
    # no lambda reservations here: twenty identical requests would take the paper's eight
    # lambdas one by one (tests/pce/test_lspdb.py is about that)
    pce.lsps.hold = 0.0
    clients = [client(pce, 10 + i) for i in range(20)]
    for c in clients:
        await c.start()
    try:
        for c in clients:
            await c.wait_up()
        reqs = [
            PcepClient.build_request(1, TN1, TN5, ex.PAPER_QE),
            PcepClient.build_request(2, TN2, IPv4Address("10.1.1.4")),
        ]
        results = await asyncio.gather(*(c.send_requests(tuple(reqs)) for c in clients))
        for resps in results:
            assert [r.rp.request_id for r in resps] == [1, 2]
            assert resps[0].paths[0].ero.subobjects == ex.fig9_ero()
            assert resps[1].paths and resps[1].no_path is None
        assert len(pce.server.connections) == 20
    finally:
        for c in clients:
            await c.close()


async def test_second_session_from_same_address_refused(pce: PceDaemon) -> None:
    async with client(pce, 3) as pcc:
        raw = await RawPeer.connect(pce, 3)
        msg = await raw.recv()
        assert isinstance(msg, M.PCErr) and msg.codes == [(9, 0)]
        assert await raw.recv() is None
        raw.close()
        assert (await pcc.request(TN1, TN5, ex.PAPER_QE)).ok


EP = O.EndPointsIpv4(TN1, TN5)


@pytest.mark.parametrize(
    ("payload", "expect"),
    [
        # unknown object class with P set: PCErr (3, 1) naming the request, session stays
        (
            M.PCReq(
                (M.Request(O.RP(7), EP, others=(O.UnknownObject(200, 1, b"", p=True),)),)
            ).encode(),
            (3, 1),
        ),
        # known class, unknown type with P set: (3, 2)
        (
            M.PCReq(
                (M.Request(O.RP(7), EP, others=(O.UnknownObject(6, 9, b"", p=True),)),)
            ).encode(),
            (3, 2),
        ),
        # END-POINTS missing: (6, 3)
        (b"\x20\x03\x00\x10" + O.RP(7).encode(), (6, 3)),
        # RP without P flag: (10, 1)
        (M.PCReq((M.Request(O.RP(7, p=False), EP),)).encode(), (10, 1)),
        # truncated object (length says 12, message ends): Close, reason 3
        (b"\x20\x03\x00\x0c\x02\x12\x00\x0c\x00\x00\x00\x00", 3),
        # object length not a multiple of 4: Close 3
        (b"\x20\x03\x00\x14\x02\x12\x00\x0d" + bytes(12), 3),
        # garbage: bad version, the stream is lost: Close 3
        (b"\xff\xfe\xfd\xfc" * 8, 3),
    ],
)
async def test_hostile_input(pce: PceDaemon, payload: bytes, expect: Any) -> None:
    async with client(pce, 2) as good:
        raw = await RawPeer.connect(pce, 5)
        await raw.handshake()
        await raw.send(payload)
        msg = await raw.recv()
        if isinstance(expect, tuple):
            assert isinstance(msg, M.PCErr) and msg.codes == [expect]
            # the session is still up: a good request on it is answered
            await raw.send(ex.paper_pcreq(8).encode())
            rep = await raw.recv()
            assert isinstance(rep, M.PCRep) and rep.responses[0].rp.request_id == 8
        else:
            assert isinstance(msg, M.Close) and msg.close.reason == expect
            assert await raw.recv() is None
        raw.close()
        # the other session never noticed
        assert (await good.request(TN1, TN5, ex.PAPER_QE)).ok


async def test_garbage_before_open(pce: PceDaemon) -> None:
    raw = await RawPeer.connect(pce, 6)
    assert isinstance(await raw.recv(), M.Open)  # the PCE opens first
    await raw.send(b"GET / HTTP/1.1\r\n\r\n")
    msg = await raw.recv()
    assert isinstance(msg, M.PCErr) and msg.codes == [(1, 1)]
    assert await raw.recv() is None
    raw.close()


async def test_unacceptable_open_negotiated(pce: PceDaemon) -> None:
    raw = await RawPeer.connect(pce, 6)
    assert isinstance(await raw.recv(), M.Open)
    await raw.send(M.Open(O.OpenObject(30, 10)).encode())  # a DeadTimer below the keepalive
    msg = await raw.recv()
    assert isinstance(msg, M.PCErr) and msg.codes == [(1, 4)] and msg.open is not None
    await raw.send(M.Open(msg.open).encode())
    assert isinstance(await raw.recv(), M.Keepalive)
    raw.close()


async def test_dead_timer_closes_silent_peer(pce: PceDaemon) -> None:
    raw = await RawPeer.connect(pce, 7)
    await raw.handshake(keepalive=1, deadtimer=2)
    msg = await raw.recv(timeout=6)
    while isinstance(msg, M.Keepalive):
        msg = await raw.recv(timeout=6)
    assert isinstance(msg, M.Close) and msg.close.reason == 2
    raw.close()


async def test_too_many_unknown_messages(pce: PceDaemon) -> None:
    raw = await RawPeer.connect(pce, 8)
    await raw.handshake()
    for _ in range(6):
        await raw.send(b"\x20\x63\x00\x04")  # message type 99
    msg = await raw.recv()
    assert isinstance(msg, M.Close) and msg.close.reason == 5
    raw.close()


async def test_client_reconnects_with_backoff() -> None:
    topo = load(PAPER)
    cfg = config_from_topology(
        topo, "pce", pcep_port=0, cli_port=None, bind="127.0.0.1", ted_source="static"
    )
    d1 = PceDaemon(topo, cfg)
    await d1.start()
    port = d1.server.port
    pcc = PcepClient(
        "127.0.0.1", port, backoff=(0.05, 0.2), config=SessionConfig(keepalive=1, deadtimer=4)
    )
    await pcc.start()
    try:
        await pcc.wait_up()
        await d1.stop()
        with pytest.raises(PcepError):
            await pcc.request(TN1, TN5, ex.PAPER_QE, timeout=0.5)
        cfg2 = config_from_topology(
            topo, "pce", pcep_port=port, cli_port=None, bind="127.0.0.1", ted_source="static"
        )
        d2 = PceDaemon(topo, cfg2)
        await d2.start()
        try:
            await pcc.wait_up(timeout=5)
            assert (await pcc.request(TN1, TN5, ex.PAPER_QE)).ok
            assert pcc.connects >= 2
        finally:
            await d2.stop()
    finally:
        await pcc.close()


async def cli(d: PceDaemon, *lines: str) -> list[str]:
    port = d.cli_server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    r, w = await asyncio.open_connection("127.0.0.1", port)
    out = []
    try:
        await r.readuntil(b"pce# ")
        for line in lines:
            w.write(line.encode() + b"\r\n")
            out.append((await r.readuntil(b"pce# "))[:-5].decode().replace("\r\n", "\n"))
    finally:
        w.close()
    return out


async def test_cli(pce: PceDaemon) -> None:
    async with client(pce, 2) as pcc:
        await pcc.request(TN1, TN5, ex.PAPER_QE)
        await pcc.request(TN2, TN5, ex.PAPER_QE)
        ted, ted_text, sessions, stats, bad = await cli(
            pce,
            "show ted json",
            "show ted",
            "show pcep sessions json",
            "show pce statistics json",
            "show bogus",
        )
    t = json.loads(ted)
    assert len(t["nodes"]) == 5 and [n["qe_capable"] for n in t["nodes"]] == [
        True,
        False,
        False,
        False,
        True,
    ]
    assert "10.1.1.2:3" in ted_text and "5 TE nodes" in ted_text
    s = json.loads(sessions)
    assert (
        len(s["sessions"]) == 1
        and s["sessions"][0]["state"] == "Up"
        and s["sessions"][0]["requests"] == 2
    )
    st = json.loads(stats)
    assert st["requests"] == 2 and st["paths"] == 1 and st["no_paths"] == 1
    assert st["no_path_reasons"] == {"SOURCE_NOT_QE_CAPABLE": 1} and st["compute_ms"]["count"] == 2
    assert bad.startswith("% Unknown command: show bogus")


async def test_stateful_pcc_reports_sync_and_show_pce_lsp(
    pce: PceDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    """A stateful PCC (RFC 8231): the PCE's Open advertises U and I; the PCC's synchronised
    reports (one RSVP-TE QE LSP, one segment-routing LSP) land in ``show pce lsp``; a
    request for an SR path is refused with PCErr (21, 1); after the PCC restarts, an empty
    synchronisation leaves nothing. Logged at INFO, as the daemon runs."""
    caplog.set_level(logging.INFO)
    sr = M.LspEntry(
        O.LspObject(9, O.lsp_flags(sync=True, state=1), (T.SymbolicPathNameTlv(b"sr-policy"),)),
        O.Srp(0, tlvs=(T.PathSetupTypeTlv(1),)),
        O.Ero(),
    )
    sr_request = M.Request(O.RP(4, tlvs=(T.PathSetupTypeTlv(1),)), O.EndPointsIpv4(TN1, TN5))
    peer = await RawPeer.connect(pce, 7)
    try:
        await peer.send(ex.stateful_open(1, instantiation=False).encode())
        theirs = await peer.recv()
        assert isinstance(theirs, M.Open)
        assert T.StatefulCapabilityTlv(C.STATEFUL_FLAG_U | C.STATEFUL_FLAG_I) in theirs.open.tlvs
        assert isinstance(await peer.recv(), M.Keepalive)
        await peer.send(M.Keepalive().encode())
        for msg in (ex.paper_pcrpt(sync=True), M.PCRpt((sr,)), ex.end_of_sync()):
            await peer.send(msg.encode())
        await peer.send(M.PCReq((sr_request,)).encode())
        err = await peer.recv()
        assert isinstance(err, M.PCErr) and err.codes == [C.ERR_UNSUPPORTED_PST]
        data, text, sessions = await cli(
            pce, "show pce lsp json", "show pce lsp", "show pcep sessions json"
        )
        lsps = json.loads(data)["lsps"]
        assert [(x["name"], x["pst"], x["state"]) for x in lsps] == [
            ("qe-tn1-tn5", "RSVP_TE", "up"),
            ("sr-policy", "SR", "up"),
        ]
        assert [x["lambda"] for x in lsps[0]["lambdas"]] == [1] * 4 and lsps[0]["delegated"]
        assert "qe-tn1-tn5" in text and "sr-policy" in text and "QE key-length 32" in text
        assert json.loads(sessions)["sessions"][0]["stateful"] is True
    finally:
        peer.close()
    for _ in range(100):
        if not pce.server.connections:
            break
        await asyncio.sleep(0.02)
    assert [x.pcc_up for x in pce.lsps.all()] == [False, False]
    peer = await RawPeer.connect(pce, 7)  # the PCC restarted with no LSP: an empty sync
    try:
        await peer.send(ex.stateful_open(1).encode())
        assert isinstance(await peer.recv(), M.Open)
        assert isinstance(await peer.recv(), M.Keepalive)
        await peer.send(M.Keepalive().encode() + ex.end_of_sync().encode())
        await peer.send(M.PCReq((sr_request,)).encode())
        assert isinstance(await peer.recv(), M.PCErr)
        (data,) = await cli(pce, "show pce lsp json")
        assert json.loads(data)["lsps"] == []
    finally:
        peer.close()
    assert pce.server.stats.failures == 0
    assert any(r.getMessage() == "lsp report" for r in caplog.records)


async def test_stateful_client_reports_and_resynchronises(pce: PceDaemon) -> None:
    """The node agents' PCC as a stateful PCC: it reports its QE LSP (the PCE's reservation
    for that path is confirmed by the report), resynchronises it after reconnecting, and
    removes it."""
    reply = await _request_fig9(pce)
    route = reply.ero
    lsp = LspStatus(5, "qe-tn1-5", TN1, TN5, 5, LspState.UP, route)
    pcc = client(pce, 8, stateful=True)
    await pcc.start()
    try:
        await pcc.wait_up()
        assert pcc.stateful and pcc.report(lsp)
        assert not pcc.report(lsp)  # unchanged (a key refresh): no second PCRpt
        await _until(lambda: len(pce.lsps.all()) == 1)
        (x,) = pce.lsps.as_json(0)["lsps"]
        assert (x["name"], x["head"], x["tail"], x["state"]) == (
            "qe-tn1-5",
            "10.1.1.1",
            "10.1.1.5",
            "up",
        )
        assert [y["lambda"] for y in x["lambdas"]] == [1] * 4
        assert pce.lsps.counters.reservations_confirmed == 1 and pce.lsps.reservations == []
        assert pcc.session is not None
        pcc._apply(pcc.session.handle(E.CloseSession(), 0.0))  # session ends, client reconnects
        await _until(lambda: pce.lsps.sync.get("127.0.0.8") is not None
                     and pce.lsps.sync["127.0.0.8"].syncs == 2)  # fmt: skip
        assert [(y.name, y.stale, y.pcc_up) for y in pce.lsps.all()] == [("qe-tn1-5", False, True)]
        assert pcc.report(lsp, remove=True)
        await _until(lambda: pce.lsps.all() == [])
    finally:
        await pcc.close()


async def _request_fig9(pce: PceDaemon) -> Any:
    async with client(pce, 2) as pcc:
        return await pcc.request(TN1, TN5, ex.PAPER_QE)


async def _until(pred: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.01)


async def test_pce_initiated_qe_service(pce: PceDaemon) -> None:
    """RFC 8281 through the PCE's CLI: ``qe-service initiate`` sends the head's PCC a
    PCInitiate (SRP, LSP with C and D, END-POINTS, the computed ERO, the QE METRICs); the
    head's report with that SRP-ID makes it up; ``qe-service release`` sends the SRP R flag
    with the PLSP-ID; a head that refuses answers PCErr and the initiation says why."""
    got: list[M.LspEntry] = []
    refuse: list[tuple[int, int]] = []
    pcc = client(pce, 9, stateful=True, instantiation=True)
    pcc.on_initiate = lambda e: (got.append(e), refuse[0] if refuse else None)[1]
    await pcc.start()
    try:
        await pcc.wait_up()
        pcc.report(LspStatus(3, "own", TN1, TN2, 3, LspState.UP))  # tn1's PCC, by its LSPs
        await _until(lambda: len(pce.lsps.all()) == 1)
        (no_head,) = await cli(pce, "qe-service initiate head 10.1.1.3 dst 10.1.1.5")
        assert no_head.startswith("% error") and "10.1.1.3" in no_head
        out = json.loads((await cli(pce, "qe-service initiate head 10.1.1.1 dst 10.1.1.5 json"))[0])
        assert (out["id"], out["state"], out["tail"]) == (1, "initiating", "10.1.1.5")
        await _until(lambda: len(got) == 1)
        (e,) = got
        assert e.srp is not None and e.srp.srp_id == 1 and e.lsp.create and e.lsp.delegated
        assert e.endpoints == O.EndPointsIpv4(TN1, TN5) and e.ero is not None
        assert e.ero.subobjects == ex.fig9_ero()
        assert qe_params_from_metrics(e.attributes.metrics) == ex.PAPER_QE
        made = LspStatus(7, "qe-tn1-7", TN1, TN5, 7, LspState.UP, e.ero.subobjects, 1, True)
        pcc.report(made)
        await _until(lambda: pce.lsps.initiations[1].state == "up")
        (text,) = await cli(pce, "show pce lsp")
        assert "QE service 1 qe-init-1: 10.1.1.1 -> 10.1.1.5 up" in text
        (rel,) = await cli(pce, "qe-service release 1")
        assert rel.strip().endswith("releasing")
        await _until(lambda: len(got) == 2)
        assert got[1].srp is not None and got[1].srp.remove and got[1].lsp.plsp_id == 7
        pcc.report(made, remove=True)
        await _until(lambda: pce.lsps.initiations[1].state == "released")
        refuse.append(C.ERR_INITIATE_UNACCEPTABLE)
        await cli(pce, "qe-service initiate head 10.1.1.1 dst 10.1.1.5 key-length 64")
        await _until(lambda: pce.lsps.initiations[2].state == "failed")
        assert pce.lsps.initiations[2].reason == "PCErr 24/1"
        # taken, then failed at the head: its report (removed, LSP-ERROR-CODE and the
        # reason) ends the initiation, and ``initiate ... wait`` answers with the reason
        refuse.clear()
        waiting = asyncio.create_task(
            cli(pce, "qe-service initiate head 10.1.1.1 dst 10.1.1.5 wait json")
        )
        await _until(lambda: len(got) == 4)  # the refused one was handed over too
        why = "ETSI 004 QKD_GET_KEY status 2 GK_INSUFFICIENT_KEY_AVAILABLE"
        srp = got[3].srp.srp_id if got[3].srp else 0
        failed = LspStatus(8, "qe-tn1-8", TN1, TN5, 8, LspState.DOWN, (), srp, True,
                           error_code=8, error=why)  # fmt: skip
        pcc.report(failed, remove=True)
        (out,) = await waiting
        assert json.loads(out)["state"] == "failed" and json.loads(out)["reason"] == why
        assert why in (await cli(pce, "show pce lsp"))[0]
    finally:
        await pcc.close()


async def test_refused_reports_answered_each_and_logged_rate_limited(
    pce: PceDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    """A PCC reporting new LSPs without their SYMBOLIC-PATH-NAME gets PCErr (10, 8) for
    each, naming the SRP; the session stays up; the warnings stop at the log budget."""
    caplog.set_level(logging.INFO)
    pce.server.bad_reports.clock = lambda: 0.0  # no refill: the budget is the burst
    peer = await RawPeer.connect(pce, 11)
    try:
        await peer.send(ex.stateful_open(1).encode())
        assert isinstance(await peer.recv(), M.Open)
        assert isinstance(await peer.recv(), M.Keepalive)
        await peer.send(M.Keepalive().encode())
        bad = [M.LspEntry(O.LspObject(i), O.Srp(i), O.Ero()) for i in range(1, 101)]
        await peer.send(b"".join(M.PCRpt((e,)).encode() for e in bad))
        errs = [await peer.recv() for _ in bad]
        assert all(isinstance(e, M.PCErr) and e.codes == [(10, 8)] for e in errs)
        assert [e.blocks[0].rps[0].srp_id for e in errs] == list(range(1, 101))
    finally:
        peer.close()
    refused = [r for r in caplog.records if r.getMessage() == "lsp report refused"]
    assert len(refused) == pce.server.bad_reports.limiter.burst
    assert pce.lsps.counters.refused == 100 and pce.lsps.all() == []


async def test_delegated_lsp_moved_by_pcupd_and_the_refusals(pce: PceDaemon) -> None:
    """RFC 8231 §5.8.2 through the PCE's CLI: ``qe-service update PCC PLSP-ID avoid X``
    sends a PCUpd (SRP, LSP with D, the new ERO, the QE METRICs) for a delegated LSP; the
    PCC's report naming the update's SRP-ID makes it ``moved``. The PCE sends none for an
    LSP not delegated to it; a PCUpd the PCC refuses — not delegated (19, 1), unknown
    PLSP-ID (19, 3) — comes back as a PCErr naming its SRP, which the LSP shows."""
    got: list[M.LspEntry] = []
    pcc = client(pce, 12, stateful=True)
    pcc.on_update = lambda e: (got.append(e), None)[1]
    await pcc.start()
    try:
        await pcc.wait_up()
        mine = LspStatus(5, "qe-tn1-5", TN1, TN5, 5, LspState.UP, ex.fig9_ero(), delegated=True)
        pcc.report(mine)
        pcc.report(LspStatus(6, "own", TN1, TN5, 6, LspState.UP, ex.fig9_ero(channel=2)))
        await _until(lambda: len(pce.lsps.all()) == 2)
        addr = pce.lsps.all()[0].pcc
        (out,) = await cli(pce, f"qe-service update {addr} 5 avoid 10.1.1.3 json")
        srp = json.loads(out)["update_pending"]
        await _until(lambda: len(got) == 1)
        (e,) = got
        assert e.srp is not None and e.srp.srp_id == srp and e.lsp.plsp_id == 5 and e.lsp.delegated
        assert e.ero is not None
        hops = {s.router_id for s in e.ero.subobjects if isinstance(s, ero.Unnumbered)}
        assert IPv4Address("10.1.1.3") not in hops
        assert qe_params_from_metrics(e.attributes.metrics) == ex.PAPER_QE
        (busy,) = await cli(pce, f"qe-service update {addr} 5")
        assert busy.startswith("% error") and "outstanding" in busy
        pcc.report(replace(mine, route=e.ero.subobjects, srp_id=srp))
        await _until(lambda: _lsp(pce, addr, 5).update_result == "moved")
        assert (
            _lsp(pce, addr, 5).update_srp is None and "moved" in (await cli(pce, "show pce lsp"))[0]
        )
        (no,) = await cli(pce, f"qe-service update {addr} 6")
        assert no.startswith("% error") and "not delegated" in no
        # the PCE believes LSP 6 delegated, and knows an LSP 9 the PCC does not
        _lsp(pce, addr, 6).delegated = True
        pce.lsps.lsps[addr][9] = replace(_lsp(pce, addr, 6), plsp_id=9)
        await cli(pce, f"qe-service update {addr} 6", f"qe-service update {addr} 9")
        await _until(lambda: _lsp(pce, addr, 9).update_result == "PCErr 19/3")
        assert _lsp(pce, addr, 6).update_result == "PCErr 19/1"
        assert pce.lsps.counters.updates_refused == 2
    finally:
        await pcc.close()


def _lsp(d: PceDaemon, pcc: str, plsp_id: int) -> Lsp:
    lsp = d.lsps.find(pcc, plsp_id)
    assert lsp is not None
    return lsp


async def test_initiate_and_release_refusals_on_the_cli(pce: PceDaemon) -> None:
    """``qe-service initiate``/``release`` answer a bad line, an unknown service, a head
    without a stateful session with I, and a path the PCE cannot compute with ``% error``
    and the reason; nothing is sent and no initiation is recorded for them."""
    got: list[M.LspEntry] = []
    pcc = client(pce, 13, stateful=True, instantiation=True)
    pcc.on_initiate = lambda e: (got.append(e), None)[1]
    plain = client(pce, 14, stateful=True)  # stateful, without I
    await pcc.start()
    await plain.start()
    try:
        await pcc.wait_up()
        await plain.wait_up()
        pcc.report(LspStatus(3, "own", TN1, TN2, 3, LspState.UP))  # tn1's PCC, by its LSPs
        plain.report(LspStatus(4, "own", TN2, TN5, 4, LspState.UP))  # tn2's, without I
        await _until(lambda: len(pce.lsps.all()) == 2)
        lines = {
            "qe-service initiate head 10.1.1.1": "usage: qe-service initiate head",
            "qe-service initiate head 10.1.1.1 dst 10.1.1.5 key-length x": "invalid literal",
            "qe-service initiate head 10.1.1.1 dst 10.1.1.5 refresh bogus 3": "unknown argument",
            "qe-service initiate head 10.1.1.1 dst 10.1.1.5 colour red": "unknown argument",
            "qe-service initiate head 10.1.1.2 dst 10.1.1.5": "instantiation to 10.1.1.2",
            "qe-service initiate head 10.1.1.1 dst 10.1.1.3": "no path 10.1.1.1 -> 10.1.1.3",
            "qe-service release 99": "no initiated QE service 99",
            "qe-service release x": "usage: qe-service release ID",
        }
        answers = await cli(pce, *lines)
        for (line, why), out in zip(lines.items(), answers, strict=True):
            assert out.startswith("% error") and why in out, (line, out)
        assert pce.lsps.initiations == {} and got == []
    finally:
        await pcc.close()
        await plain.close()


async def test_a_restarted_stateful_client_empties_its_part_of_the_database(
    pce: PceDaemon,
) -> None:
    """A node agent that restarts comes back with no LSP: its PCC's first synchronisation is
    the end-of-sync marker alone (RFC 8231 §5.6), and the LSPs the PCE kept for it since its
    session went down (marked PCC down) are removed with their lambdas."""
    before = client(pce, 15, stateful=True)
    await before.start()
    try:
        await before.wait_up()
        before.report(LspStatus(5, "qe-tn1-5", TN1, TN5, 5, LspState.UP, ex.fig9_ero()))
        await _until(lambda: len(pce.lsps.all()) == 1)
    finally:
        await before.close()
    await _until(lambda: [x.pcc_up for x in pce.lsps.all()] == [False])
    now = asyncio.get_running_loop().time
    assert pce.lsps.held(now()) != {}  # kept, lambdas with them, until the State Timeout
    after = client(pce, 15, stateful=True)  # the restarted node agent: nothing to report
    await after.start()
    try:
        await after.wait_up()
        await _until(lambda: pce.lsps.sync["127.0.0.15"].syncs == 2)
        assert pce.lsps.all() == [] and pce.lsps.held(now()) == {}
        assert not pce.lsps.sync["127.0.0.15"].syncing and pce.lsps.counters.purged == 1
    finally:
        await after.close()
