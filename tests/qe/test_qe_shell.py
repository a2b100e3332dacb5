"""The QE service's asyncio shell (node_agent/qe_service.py) on the real event loop: it
awaits the PCC and the ETSI 004 client in tasks and feeds their answers back, drives the
RSVP shell (the real RsvpAgent and core of tn1, without its socket), keeps the core's one
timer armed and wakes ``wait``. The PCC and the ETSI client are stand-ins here."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from daemonkit.cli import CommandTable
from daemonkit.pcep import LspStatus, PcepClient, Reply
from gmpls import qe
from gmpls.pcep.messages import PCRep, PCRpt, decode_message
from gmpls.pcep.relay import with_relay
from gmpls.qe_service.events import Create
from gmpls.rsvp import events as RE
from gmpls.topology import load
from node_agent.qe_cli import created, register
from node_agent.qe_service import MAX_KEYING, QeService
from node_agent.rsvp import RsvpAgent
from pce.compute import PathComputer
from pce.service import PceService
from pce.synth import topology_lsas
from pce.ted import Ted

ROOT = Path(__file__).resolve().parents[2]
TOPO = load(ROOT / "topologies" / "paper.yaml")
TN5 = IPv4Address("10.1.1.5")
HANDLE = bytes(range(1, 65))


class Pcc:
    """Answers with the real PCE computation over the topology's TED."""

    is_up = True

    def __init__(self) -> None:
        ted = Ted()
        ted.load(topology_lsas(TOPO))
        self.pce = PceService(PathComputer(ted))

    async def request(
        self,
        src: IPv4Address,
        dst: IPv4Address,
        qe_params: qe.QeParams | None = None,
        bandwidth: float = 0.0,
        *,
        timeout: float = 10.0,
    ) -> Reply:
        await asyncio.sleep(0.001)
        req = PcepClient.build_request(1, src, dst, qe_params, bandwidth)
        return Reply(1, self.pce.answer(req)[0])


class Etsi:
    """A proxy that answers after a millisecond, or never (``unreachable``)."""

    def __init__(self, unreachable: bool = False) -> None:
        self.unreachable = unreachable
        self.index = 0
        self.closed: list[bytes] = []
        self.relays: list[tuple[IPv4Address, ...]] = []

    async def _hop(self) -> None:
        await asyncio.sleep(0.001)
        if self.unreachable:
            raise TimeoutError("no answer from 10.2.1.11:5424")

    async def open(
        self,
        destination: IPv4Address,
        key_handle: bytes | None = None,
        key_length: int = 32,
        *,
        relay: tuple[IPv4Address, ...] = (),
    ) -> tuple[int, bytes]:
        self.relays.append(relay)
        await self._hop()
        return 0, HANDLE

    async def connect(self, key_handle: bytes, timeout_ms: int | None = None) -> int:
        await self._hop()
        return 1

    async def get_key(
        self, key_handle: bytes, expect_index: int | None = None
    ) -> tuple[int, int, bytes]:
        await self._hop()
        self.index += 1
        return 0, self.index - 1, bytes([self.index]) * 32

    async def close(self, key_handle: bytes) -> int:
        await self._hop()
        self.closed.append(key_handle)
        return 0


class Unwired(RsvpAgent):
    """tn1's RSVP shell and core without a socket: what it sends goes nowhere."""

    async def start(self) -> None:
        pass

    async def stop(self, teardown: bool = True) -> None:
        pass


def shell(etsi: Etsi) -> QeService:
    agent = Unwired.from_topology(TOPO, "tn1")
    svc = QeService(name="tn1", router_id=agent.core.router_id, rsvp=agent, pcc=Pcc(), etsi=etsi)
    agent.on_action = svc.on_rsvp_action
    return svc


async def test_keying_through_tasks_then_up_and_time_refresh_on_the_loop() -> None:
    etsi = Etsi()
    svc = shell(etsi)
    await svc.start()
    sid = created(svc.feed(Create(TN5, qe.QeParams(refresh_value=50))))
    s = svc.core.find(sid)
    async with asyncio.timeout(5):
        while s.state != "signalling":  # PCReq, create_lsp, OPEN, CONNECT + GET_KEY
            await asyncio.sleep(0.005)
    assert (s.key_index, s.key_handle) == (0, HANDLE)
    psb = next(iter(svc.rsvp.core.psbs.values()))  # Path written with the handle
    assert psb.key_handle == HANDLE and psb.state == "path-sent"
    # the Resv (not sent here: no wire) would bring LspUp; the RSVP shell passes it on
    svc.on_rsvp_action(RE.LspUp(psb.key, "head", ()))
    assert (await svc.wait(sid, 0.1)).state == "up"
    async with asyncio.timeout(5):
        while (s.key_index or 0) < 3:  # the core's timer, armed on the loop
            await asyncio.sleep(0.01)
    await svc.stop()
    assert s.state == "down" and s.key is None and etsi.closed == [HANDLE]


async def test_proxy_unreachable_fails_252_1_and_the_cli_wait_returns() -> None:
    svc = shell(Etsi(unreachable=True))
    table = CommandTable()
    register(table, svc)
    await svc.start()
    out = await table.run("qe-service create dst 10.1.1.5 wait")
    assert out is not None and "failed" in out and "(code 252/1)" in out, out
    assert "QKD_OPEN: proxy unreachable (no answer from 10.2.1.11:5424)" in out
    assert svc.rsvp.core.psbs == {}
    await svc.stop()


class RelayPcc(Pcc):
    """The PCE's answer with a key relay path in its RP object (RELAY-PATH TLV), through
    the PCEP codec, as the key-aware PCE gives it."""

    RELAY = (IPv4Address("10.1.1.1"), IPv4Address("10.1.1.3"), TN5)

    async def request(self, *args: Any, **kw: Any) -> Reply:
        r = await super().request(*args, **kw)
        rp = replace(r.response.rp, tlvs=with_relay(r.response.rp.tlvs, self.RELAY))
        msg = decode_message(PCRep((replace(r.response, rp=rp),)).encode())
        assert isinstance(msg, PCRep)
        return Reply(1, msg.responses[0])


async def test_the_relay_path_of_the_pcrep_goes_to_the_key_manager_and_show() -> None:
    etsi = Etsi()
    agent = Unwired.from_topology(TOPO, "tn1")
    names = {TOPO.site_id(km): km for km in TOPO.sites}
    svc = QeService(
        name="tn1",
        router_id=agent.core.router_id,
        rsvp=agent,
        pcc=RelayPcc(),
        etsi=etsi,
        site_names=names,
    )
    agent.on_action = svc.on_rsvp_action
    table = CommandTable()
    register(table, svc)
    await svc.start()
    sid = created(svc.feed(Create(TN5, qe.QeParams())))
    s = svc.core.find(sid)
    async with asyncio.timeout(5):
        while s.state != "signalling":
            await asyncio.sleep(0.005)
    assert etsi.relays == [RelayPcc.RELAY]
    out = await table.run("show qe-service json")
    assert out is not None
    (j,) = json.loads(out)["services"]
    assert j["relay_path"] == ["10.1.1.1", "10.1.1.3", "10.1.1.5"]
    assert j["relay_kms"] == ["etsiA", "?", "etsiB"]
    text = await table.run("show qe-service")
    assert text is not None and "key relay: 10.1.1.1 (etsiA) > 10.1.1.3 > 10.1.1.5 (etsiB)" in text
    await svc.stop()


def test_the_head_reports_its_relay_path_to_a_stateful_pce() -> None:
    """The PCRpt's LSP object carries the relay path (RELAY-PATH TLV), so the PCE keeps
    the service's key consumption committed on those QKD links."""
    relay = RelayPcc.RELAY
    lsp = LspStatus(7, "qe-tn1-7", IPv4Address("10.1.1.1"), TN5, 7, relay=relay)
    msg = decode_message(PCRpt((lsp.entry(),)).encode())
    assert isinstance(msg, PCRpt) and msg.entries[0].relay == relay
    plain = decode_message(PCRpt((replace(lsp, relay=()).entry(),)).encode())
    assert isinstance(plain, PCRpt) and plain.entries[0].relay == ()


class NamedEtsi(Etsi):
    """A proxy that keeps a handle its caller names (ETSI 004 QKD_OPEN)."""

    async def open(
        self,
        destination: IPv4Address,
        key_handle: bytes | None = None,
        key_length: int = 32,
        *,
        relay: tuple[IPv4Address, ...] = (),
    ) -> tuple[int, bytes]:
        await super().open(destination, key_handle, key_length, relay=relay)
        return 0, key_handle or HANDLE


async def test_node_agents_key_while_the_pcreq_is_out_on_the_loop() -> None:
    built = QeService.from_topology(TOPO, "tn1")  # what the daemon runs (no socket yet)
    assert built.core.pipeline_keying and built.core.max_keying == MAX_KEYING
    etsi = NamedEtsi()
    agent = Unwired.from_topology(TOPO, "tn1")
    svc = QeService(
        name="tn1", router_id=agent.core.router_id, rsvp=agent, pcc=Pcc(), etsi=etsi,
        pipeline_keying=True,
    )  # fmt: skip
    agent.on_action = svc.on_rsvp_action
    await svc.start()
    sid = created(svc.feed(Create(TN5, qe.QeParams())))
    s = svc.core.find(sid)
    async with asyncio.timeout(5):
        while s.state != "signalling":
            await asyncio.sleep(0.005)
    handle = s.key_handle
    assert handle is not None and len(handle) == 64 and handle != HANDLE  # named by tn1
    psb = next(iter(svc.rsvp.core.psbs.values()))
    assert psb.key_handle == handle and psb.state == "path-sent"
    assert s.stages["etsi_open"] == s.stages["pcreq"] <= s.stages["pcrep"]  # keyed meanwhile
    await svc.stop()
    assert etsi.closed == [handle]
