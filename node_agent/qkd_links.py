"""The site node's QKD link advertisement: the asyncio shell of
:class:`gmpls.qkd_advert.core.QkdAdvertiser` (docs/ospf-te.md#advertising-the-qkd-links).

One connected UDP socket to the key manager's status port (5425; the kernel drops
datagrams from anywhere else), one timer. The core's actions: a status request is sent, a
QKD link TLV is originated in its own TE opaque LSA through the node's OSPF-TE speaker,
a link that is gone has its LSA flushed, and each is logged (one line, no key: there is
none here). ``show ip ospf qkd-link [json]`` shows what the KM says and what is advertised.
"""

from __future__ import annotations

import asyncio
import logging
from ipaddress import IPv4Address
from typing import Any, Protocol

from daemonkit import netns
from daemonkit.timer import CoreTimer
from gmpls.core import Tick
from gmpls.ospf.constants import LsType
from gmpls.ospf.te import TeLSA
from gmpls.qkd import kmstatus
from gmpls.qkd_advert.core import AdvertConfig, QkdAdvertiser
from gmpls.qkd_advert.events import Action, Event, Flush, KmDatagram, Note, Originate, SendKm
from gmpls.topology import Topology
from node_agent.ospf_te import OspfTeAgent

log = logging.getLogger("node_agent.qkd_links")


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, agent: QkdLinkAgent) -> None:
        self.agent = agent

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.agent.feed(KmDatagram(data))

    def error_received(self, exc: Exception) -> None:
        self.agent.send_errors += 1  # ICMP unreachable while the KM starts: the poll copes


class _Ospf(Protocol):
    """What the agent needs of the OSPF-TE speaker."""

    def originate_opaque(self, ls_type: int, ls_id: IPv4Address, body: Any) -> None: ...
    def flush_opaque(self, ls_type: int, ls_id: IPv4Address) -> None: ...


class QkdLinkAgent:
    """Polls the KM at ``km`` (address, port) from ``bind`` and advertises the site's QKD
    links through ``ospf``."""

    def __init__(
        self,
        ospf: _Ospf,
        km: tuple[str, int],
        cfg: AdvertConfig,
        *,
        bind: str | None = None,
        name: str = "",
    ) -> None:
        self.ospf = ospf
        self.km = km
        self.bind = bind
        self.name = name
        self.core = QkdAdvertiser(cfg)
        self.timer = CoreTimer(lambda at: self.feed(Tick(), at))
        self.transport: asyncio.DatagramTransport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.send_errors = 0

    @classmethod
    def from_topology(
        cls, topo: Topology, host: str, ospf: OspfTeAgent, *, stock_fraction: float = 0.10
    ) -> QkdLinkAgent | None:
        """The agent of ``host`` if it is its site's site node (the first node its key
        manager serves), else None: it polls the KM's address on the domain they share,
        from its own address there, and advertises under the site ID (its router ID);
        ``stock_fraction`` is the stock hysteresis (docs/ospf-te.md)."""
        km = topo.site_of(host)
        if km is None or topo.served_by(km)[0] != host:
            return None
        dom = topo.shared_domain(host, km)
        if dom is None:
            raise ValueError(f"{host} shares no domain with its key manager {km}")
        km_addr = str(topo.host(km).interfaces[dom])
        bind = str(topo.host(host).interfaces[dom])
        cfg = AdvertConfig(topo.site_id(km), stock_fraction=stock_fraction)
        return cls(ospf, (km_addr, kmstatus.PORT), cfg, bind=bind, name=host)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        local = (self.bind, 0) if self.bind else None
        self.transport, _ = await netns.datagram_endpoint(lambda: _Proto(self), local, self.km)
        self.timer.start(self.loop)
        log.info(
            "polling the km for qkd links",
            extra={"node": self.name, "event": "qkd_km", "km": f"{self.km[0]}:{self.km[1]}"},
        )
        self.feed(Tick())

    async def stop(self) -> None:
        self.timer.cancel()
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def feed(self, event: Event, at: float | None = None) -> None:
        """Hand the core one event now (a timer tells ``at``, when it was set for)."""
        if self.loop is None:
            return
        now = self.loop.time() if at is None else max(self.loop.time(), at)
        try:
            actions = self.core.handle(event, now)
        except Exception:  # the core promises not to raise; a datagram must not stop us
            log.exception("qkd advertiser failed", extra={"node": self.name})
            self.timer.arm(now + 1.0)
            return
        for a in actions:
            self._carry_out(a)
        self.timer.arm(self.core.next_timer())

    def _carry_out(self, a: Action) -> None:
        if isinstance(a, SendKm):
            if self.transport is not None:
                try:
                    self.transport.sendto(a.data)
                except OSError:
                    self.send_errors += 1
        elif isinstance(a, Originate):
            self.ospf.originate_opaque(LsType.OPAQUE_AREA, a.ls_id, TeLSA((a.tlv,)))
            t = a.tlv
            log.info(
                "qkd link advertised",
                extra={
                    "node": self.name,
                    "event": "qkd_link",
                    "far_site": str(t.far_site),
                    "why": a.why,
                    "up": t.up,
                    "rate_bps": t.rate_bps,
                    "stock_bits": t.stock_bits,
                },
            )
        elif isinstance(a, Flush):
            self.ospf.flush_opaque(LsType.OPAQUE_AREA, a.ls_id)
            log.info(
                "qkd link withdrawn",
                extra={"node": self.name, "event": "qkd_link_gone", "far_site": str(a.far_site)},
            )
        elif isinstance(a, Note):
            level = logging.WARNING if a.event == "km_lost" else logging.INFO
            log.log(level, a.event, extra={"node": self.name, "event": a.event, "detail": a.detail})

    def view(self) -> dict[str, Any]:
        v = self.core.view()
        v["km"] = f"{self.km[0]}:{self.km[1]}"
        v["counters"]["sendErrors"] = self.send_errors
        return v


def register_commands(table: Any, agent: QkdLinkAgent) -> None:
    """``show ip ospf qkd-link [json]`` into a :class:`daemonkit.cli.CommandTable`."""
    table.register(
        "show ip ospf qkd-link",
        lambda args: agent.view(),
        "this site's QKD links: what the key manager says, what OSPF-TE advertises",
        text=view_text,
    )


def view_text(v: dict[str, Any]) -> str:
    """``show ip ospf qkd-link``: one line per link."""
    reach = "reachable" if v["kmReachable"] else "NOT reachable"
    lines = [f"site {v['localSite']}, key manager {v['km']} {reach}"]
    lines.append(f"{'far site':<16}{'name':<12}{'state':<6}{'rate b/s':>10}{'stock bits':>14}  LSA")
    for far, x in v["links"].items():
        state = "up" if x["up"] else "down"
        lsa = x["lsId"] + (" (pending)" if x["pending"] else "")
        lines.append(
            f"{far:<16}{x['name']:<12}{state:<6}{x['rateBps']:>10}{x['stockBits']:>14}  {lsa}"
        )
    return "\n".join(lines)
