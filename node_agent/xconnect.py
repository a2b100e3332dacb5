"""The node's cross-connects: what the RSVP core's :class:`CrossConnect` actions become in
the kernel (docs/dataplane.md, "Optical layer and cross-connects").

- At a transit node each direction of the LSP is one tc rule on the incoming channel:
  ``clsact`` qdisc, ingress filter ``u32 match u32 0 0`` (every frame) with the action
  ``mirred egress redirect dev OUT``, installed through netlink (pyroute2). A frame that
  arrives on the lambda in leaves on the lambda out inside the kernel: it never reaches a
  user-space process of the node. Removing the ``clsact`` qdisc removes the rule.
- At the head and the tail the cross-connect is the data plane's business (the QE
  service hands it to ``node_agent.dataplane.Dataplane``, which encrypts between the
  access port and the channels); it is recorded here for ``show mpls lsp``, and passed to
  the ``dataplane`` given, if any.

A cross-connect that cannot be installed (a channel missing, netlink refusing) is logged
(rate-limited), counted and answered with :class:`CrossConnectFailed`, which fails the LSP
with a PathErr (24/9). At start every channel of the node loses any ``clsact`` qdisc left
by an earlier run; at stop every cross-connect installed is removed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from daemonkit.ratelog import RateLimitedLog
from gmpls.dataplane.names import channel_ifname
from gmpls.rsvp import events as E

log = logging.getLogger("node_agent.xconnect")

#: the clsact qdisc's ingress hook (TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS))
INGRESS = 0xFFFFFFF2
ETH_P_ALL = 0x0003


class Dataplane(Protocol):
    """The data plane at the ends of a QE service (node_agent/dataplane.py)."""

    def attach(self, cc: E.CrossConnect) -> None: ...
    def detach(self, lsp: E.LspKey) -> None: ...


class NoDataplane:
    """The stand-in for the ends' data plane when there is none: head and tail
    cross-connects are recorded (``show mpls lsp``) and carry no frame."""

    def attach(self, cc: E.CrossConnect) -> None:
        return None

    def detach(self, lsp: E.LspKey) -> None:
        return None


class CrossConnectError(Exception):
    """A cross-connect could not be installed; the message says why."""


def _name(c: E.Channel | None, access_if: str | None) -> str | None:
    return access_if if c is None else channel_ifname(c.local_if, c.lam)


def _rules(cc: E.CrossConnect) -> list[tuple[str, str]]:
    """(in, out) channel names of each direction of a transit cross-connect."""
    out = []
    for a, b in ((cc.fwd_in, cc.fwd_out), (cc.rev_in, cc.rev_out)):
        if a is not None and b is not None:
            out.append((channel_ifname(a.local_if, a.lam), channel_ifname(b.local_if, b.lam)))
    return out


class TcRules:
    """tc clsact + u32 + mirred redirects on this namespace's interfaces (netlink)."""

    def __init__(self) -> None:
        self._ipr: IPRoute | None = None

    def _nl(self) -> IPRoute:
        if self._ipr is None:
            self._ipr = IPRoute()
        return self._ipr

    def _index(self, ifname: str) -> int:
        found = self._nl().link_lookup(ifname=ifname)
        if not found:
            raise CrossConnectError(f"no channel {ifname} (is the optical layer up?)")
        return int(found[0])

    def redirect(self, src: str, dst: str) -> None:
        """Every frame arriving on ``src`` leaves on ``dst``."""
        i, o = self._index(src), self._index(dst)
        nl = self._nl()
        try:
            with contextlib.suppress(NetlinkError):
                nl.tc("del", "clsact", index=i)
            nl.tc("add", "clsact", index=i)
            nl.tc(
                "add-filter",
                "u32",
                index=i,
                parent=INGRESS,
                protocol=ETH_P_ALL,
                prio=1,
                target=0,
                keys=["0x0/0x0+0"],
                action={
                    "kind": "mirred",
                    "direction": "egress",
                    "action": "redirect",
                    "ifindex": o,
                },
            )
        except NetlinkError as e:
            with contextlib.suppress(NetlinkError):
                nl.tc("del", "clsact", index=i)
            raise CrossConnectError(f"tc on {src}: {e.args[-1] if e.args else e}") from None

    def clear(self, ifname: str) -> bool:
        """Remove the clsact qdisc of ``ifname`` (and so its rules); whether one was there."""
        found = self._nl().link_lookup(ifname=ifname)
        if not found:
            return False
        try:
            self._nl().tc("del", "clsact", index=found[0])
        except NetlinkError:
            return False
        return True

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None


class CrossConnects:
    """The cross-connects of one node: transit ones in the kernel (:class:`TcRules`), head
    and tail ones handed to ``dataplane``."""

    def __init__(
        self,
        node: str,
        channels: Iterable[str] = (),
        *,
        access_if: str | None = None,
        dataplane: Dataplane | None = None,
        tc: TcRules | None = None,
    ) -> None:
        self.node = node
        self.channels = tuple(channels)
        self.access_if = access_if
        self.dataplane: Dataplane = dataplane or NoDataplane()
        self.tc = tc or TcRules()
        self.installed: dict[E.LspKey, E.CrossConnect] = {}
        self.counters = {"xc_installed": 0, "xc_removed": 0, "xc_failures": 0}
        self._bad = RateLimitedLog(log, {"node": node})

    def sweep(self) -> int:
        """Remove the clsact qdiscs an earlier run left on the channels; how many."""
        return sum(self.tc.clear(c) for c in self.channels)

    def apply(self, a: E.CrossConnect | E.CrossConnectRemoved) -> str | None:
        """Carry out one action; the reason when a cross-connect failed (the caller feeds
        :class:`CrossConnectFailed` back to the core)."""
        if isinstance(a, E.CrossConnectRemoved):
            self.remove(a.lsp)
            return None
        if a.lsp in self.installed:
            self.remove(a.lsp)
        try:
            if a.role == "transit":
                for src, dst in _rules(a):
                    self.tc.redirect(src, dst)
            else:
                self.dataplane.attach(a)
        except Exception as e:  # the reason goes to the log and into the PathErr's cause
            for src, _ in _rules(a) if a.role == "transit" else ():
                self.tc.clear(src)
            self.counters["xc_failures"] += 1
            reason = str(e) or type(e).__name__
            self._bad.log(
                logging.WARNING,
                "cross-connect failed",
                {"lsp": str(a.lsp), "role": a.role, "reason": reason},
            )
            return reason
        self.installed[a.lsp] = a
        self.counters["xc_installed"] += 1
        log.info(
            "cross-connect installed",
            extra={"node": self.node, "lsp": str(a.lsp), **_flat(self.describe(a))},
        )
        return None

    def remove(self, lsp: E.LspKey) -> None:
        cc = self.installed.pop(lsp, None)
        if cc is None:
            return
        if cc.role == "transit":
            for src, _ in _rules(cc):
                self.tc.clear(src)
        else:
            try:
                self.dataplane.detach(lsp)
            except Exception:
                log.exception("data plane detach failed", extra={"node": self.node})
        self.counters["xc_removed"] += 1
        log.info("cross-connect removed", extra={"node": self.node, "lsp": str(lsp)})

    def close(self) -> None:
        """Remove every cross-connect (agent stop)."""
        for lsp in list(self.installed):
            self.remove(lsp)
        self.tc.close()
        self._bad.close()

    def describe(self, cc: E.CrossConnect) -> dict[str, Any]:
        """The cross-connect as JSON: role, how it is installed, each direction in -> out."""
        acc = self.access_if
        rev = None
        if cc.rev_in is not None or cc.rev_out is not None:
            rev = {"in": _name(cc.rev_in, acc), "out": _name(cc.rev_out, acc)}
        return {
            "role": cc.role,
            "installed": "tc" if cc.role == "transit" else "dataplane",
            "fwd": {"in": _name(cc.fwd_in, acc), "out": _name(cc.fwd_out, acc)},
            "rev": rev,
        }

    def table(self) -> dict[str, dict[str, Any]]:
        """LSP (as text) -> :meth:`describe` of its cross-connect."""
        return {str(k): self.describe(cc) for k, cc in self.installed.items()}


def _flat(d: dict[str, Any]) -> dict[str, str]:
    out = {"role": str(d["role"]), "fwd": f"{d['fwd']['in']}>{d['fwd']['out']}"}
    if d["rev"]:
        out["rev"] = f"{d['rev']['in']}>{d['rev']['out']}"
    return out
