"""The QKD link advertiser: a site node polls its key manager for the site's QKD links
(:mod:`gmpls.qkd.kmstatus`, about once a second) and keeps one TE opaque LSA per link
(:mod:`gmpls.ospf.qkdlink`) in the area, re-originated with hysteresis, never per key
(docs/ospf-te.md#advertising-the-qkd-links):

- a new link is originated at once; a link the KM no longer reports is flushed at once;
- a change of state (up/down), rate or buffer is *urgent*: originated as soon as
  MinLSInterval allows;
- a change of stock is *significant* when it moves by more than ``stock_fraction`` (10 %)
  of the stock last advertised and by at least ``min_change_bits``, or when the stock
  reaches or leaves zero; significant changes are originated as soon as MinLSInterval
  allows, smaller ones not at all;
- at most one origination per link per MinLSInterval: a change that comes sooner waits,
  and what goes out then is the link's latest status;
- a KM that leaves a request unanswered for ``km_timeout`` seconds is *lost*: every
  link is advertised down (its last stock kept) until the KM answers again. The time runs
  from the oldest request sent since the last answer, so a node whose own event loop was
  held up (its polls not sent) does not count the KM lost for the time it did not ask.

Pure: ``handle(event, now) -> actions``, ``next_timer()``; no socket, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from typing import Any

from gmpls.core import Tick
from gmpls.errors import DecodeError
from gmpls.ospf.constants import MIN_LS_INTERVAL
from gmpls.ospf.qkdlink import QKD_OPAQUE_ID_COUNT, QkdLinkTlv, qkd_lsa_id
from gmpls.qkd import kmstatus as K
from gmpls.qkd_advert.events import (
    Action,
    Event,
    Flush,
    KmDatagram,
    Note,
    Originate,
    SendKm,
)

#: how many requests may be answered late (a KM slower than the poll interval)
OUTSTANDING = 4


@dataclass(frozen=True, slots=True)
class AdvertConfig:
    """The site (its site node's router ID) and the knobs of docs/ospf-te.md."""

    local_site: IPv4Address
    poll_interval: float = 1.0
    km_timeout: float = 3.5
    stock_fraction: float = 0.10
    min_change_bits: int = 1024
    min_ls_interval: float = float(MIN_LS_INTERVAL)


@dataclass(slots=True)
class LinkAdvert:
    """One QKD link: its LSA instance, the KM's latest word on it, what we last
    originated and when, and when the next origination is due (None: nothing waits)."""

    instance: int
    status: K.LinkStatus
    current: QkdLinkTlv
    sent: QkdLinkTlv | None = None
    sent_at: float = float("-inf")
    due: float | None = None
    why: str = ""

    @property
    def ls_id(self) -> IPv4Address:
        return qkd_lsa_id(self.instance)


def change(sent: QkdLinkTlv | None, cur: QkdLinkTlv, cfg: AdvertConfig) -> str | None:
    """Why ``cur`` must be advertised in place of ``sent``, or None (hysteresis)."""
    if sent is None:
        return "new"
    if sent.up != cur.up:
        return "state"
    if sent.rate_bps != cur.rate_bps:
        return "rate"
    if sent.buffer_bits != cur.buffer_bits:
        return "buffer"
    old, new = sent.stock_bits, cur.stock_bits
    if old == new:
        return None
    if (old == 0) != (new == 0):
        return "stock"
    delta = abs(new - old)
    if delta >= cfg.min_change_bits and delta > cfg.stock_fraction * old:
        return "stock"
    return None


class QkdAdvertiser:
    """The sans-I/O core (module doc)."""

    def __init__(self, cfg: AdvertConfig) -> None:
        self.cfg = cfg
        self.links: dict[IPv4Address, LinkAdvert] = {}  # by far site
        self.next_poll = 0.0
        self.request_id = 0
        #: the requests still answerable, oldest first (a late answer to an older one
        #: than the last answered is stale)
        self.outstanding: list[int] = []
        #: when the oldest request sent since the last answer went out (None: none waits)
        self.waiting_since: float | None = None
        self.last_reply: float | None = None
        self.km_lost = False
        self.counters = {
            "polls": 0,
            "replies": 0,
            "malformed": 0,
            "stale": 0,
            "originated": 0,
            "flushed": 0,
            "km_lost": 0,
        }

    # --- the core contract ----------------------------------------------------------

    def handle(self, event: Event, now: float) -> list[Action]:
        if isinstance(event, Tick):
            return self._tick(now)
        if isinstance(event, KmDatagram):
            return self._datagram(event.data, now)
        raise TypeError(f"not a QKD advertiser event: {event!r}")

    def next_timer(self) -> float | None:
        times = [self.next_poll]
        lost_at = self._lost_at()
        if lost_at is not None:
            times.append(lost_at)
        times += [a.due for a in self.links.values() if a.due is not None]
        return min(times)

    # --- views ----------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        """``show ip ospf qkd-link json``: what the KM says and what we advertise."""
        return {
            "localSite": str(self.cfg.local_site),
            "kmReachable": self.last_reply is not None and not self.km_lost,
            "links": {
                str(far): {
                    "name": a.status.name,
                    "lsId": str(a.ls_id),
                    "up": a.current.up,
                    "rateBps": a.current.rate_bps,
                    "stockBits": a.current.stock_bits,
                    "bufferBits": a.current.buffer_bits,
                    "usedBits": a.status.used_bits,
                    "services": a.status.services,
                    "advertised": None if a.sent is None else _advertised(a.sent),
                    "pending": a.due is not None,
                }
                for far, a in sorted(self.links.items())
            },
            "counters": dict(self.counters),
        }

    # --- internals ------------------------------------------------------------------

    def _lost_at(self) -> float | None:
        """When the KM counts as lost if it stays silent (None: lost already, or no
        request waiting)."""
        if self.km_lost or self.waiting_since is None:
            return None
        return self.waiting_since + self.cfg.km_timeout

    def _tick(self, now: float) -> list[Action]:
        out: list[Action] = []
        if now >= self.next_poll:
            if self.waiting_since is None:
                self.waiting_since = now
            self.request_id = self.request_id % 0xFFFFFFFF + 1
            self.outstanding = [*self.outstanding[-(OUTSTANDING - 1) :], self.request_id]
            self.counters["polls"] += 1
            self.next_poll = now + self.cfg.poll_interval
            out.append(SendKm(K.encode(K.LinksRequest(self.request_id))))
        lost_at = self._lost_at()
        if lost_at is not None and now >= lost_at:
            self.km_lost = True
            self.counters["km_lost"] += 1
            out.append(Note("km_lost", f"no answer for {self.cfg.km_timeout:g} s"))
            for a in self.links.values():
                a.current = replace(a.current, up=False)
                self._consider(a, now, out, lost=True)
        for a in self.links.values():
            if a.due is not None and now >= a.due:
                self._send(a, now, out)
        return out

    def _datagram(self, data: bytes, now: float) -> list[Action]:
        try:
            msg = K.decode(data)
        except DecodeError:
            self.counters["malformed"] += 1
            return []
        if not isinstance(msg, K.LinksReply) or msg.request_id not in self.outstanding:
            self.counters["stale"] += 1
            return []
        del self.outstanding[: self.outstanding.index(msg.request_id) + 1]
        self.counters["replies"] += 1
        self.last_reply = now
        self.waiting_since = None
        out: list[Action] = []
        if self.km_lost:
            self.km_lost = False
            out.append(Note("km_back"))
        self._update(msg.links, now, out)
        return out

    def _update(self, links: tuple[K.LinkStatus, ...], now: float, out: list[Action]) -> None:
        seen = {s.far_site: s for s in links}
        for far in [f for f in self.links if f not in seen]:
            a = self.links.pop(far)
            self.counters["flushed"] += 1
            out.append(Flush(a.ls_id, far))
        for far in sorted(seen):
            s = seen[far]
            tlv = QkdLinkTlv(
                self.cfg.local_site,
                far,
                s.rate_bps,
                s.stock_bits,
                s.buffer_bits,
                s.up,
            )
            if far not in self.links:
                used = {x.instance for x in self.links.values()}
                free = next(i for i in range(QKD_OPAQUE_ID_COUNT) if i not in used)
                self.links[far] = LinkAdvert(free, s, tlv)
            a = self.links[far]
            a.status, a.current = s, tlv
            self._consider(a, now, out)

    def _consider(self, a: LinkAdvert, now: float, out: list[Action], lost: bool = False) -> None:
        why = change(a.sent, a.current, self.cfg)
        if why is None:
            a.due = None  # back within the hysteresis band: nothing to send
            return
        a.why = "km lost" if lost else why
        a.due = max(now, a.sent_at + self.cfg.min_ls_interval)
        if now >= a.due:
            self._send(a, now, out)

    def _send(self, a: LinkAdvert, now: float, out: list[Action]) -> None:
        a.sent, a.sent_at, a.due = a.current, now, None
        self.counters["originated"] += 1
        out.append(Originate(a.ls_id, a.current, a.why))


def _advertised(t: QkdLinkTlv) -> dict[str, Any]:
    return {
        "up": t.up,
        "rateBps": t.rate_bps,
        "stockBits": t.stock_bits,
        "bufferBits": t.buffer_bits,
    }
