"""The QE service's CLI commands (docs/qe-service.md §CLI), each with a ``json`` form::

    qe-service create dst A.B.C.D [key-length N] [layer 1|2|3] [algorithm N]
                      [refresh time|volume|none V] [bandwidth B] [delegate] [wait]
    qe-service wait ID [timeout S]
    qe-service delete ID
    qe-service traffic ID BYTES | ID rate BPS
    show qe-service [ID]
    show mpls lsp
    show rsvp neighbor

The commands work on any :class:`QeNode`: the node agent's asyncio shell
(:class:`node_agent.qe_service.QeService`) or an in-memory node on a virtual clock.
Requests go to the core as events; what is shown is read off its services.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address
from typing import Any, Protocol

from daemonkit.cli import Failed
from gmpls import qe
from gmpls.qe_service.core import QeServiceCore
from gmpls.qe_service.events import (
    Action,
    AddTraffic,
    Create,
    Delete,
    Event,
    ServiceChanged,
    SetRate,
)
from gmpls.qe_service.model import FAILED, QeServiceError, Service

Handler = Callable[[list[str]], Any | Awaitable[Any]]


class QeNode(Protocol):
    """What the commands need of a node running the QE service."""

    @property
    def core(self) -> QeServiceCore: ...
    @property
    def pcep_up(self) -> bool: ...
    def feed(self, event: Event) -> list[Action]: ...
    def now(self) -> float: ...
    async def wait(self, sid: str, timeout: float = 30.0) -> Service: ...
    def rsvp_status(self) -> dict[str, Any]: ...


class CommandRegistry(Protocol):
    """A CLI command table (``daemonkit.cli.CommandTable`` fits)."""

    def register(
        self,
        words: str,
        handler: Handler,
        help: str,
        *,
        text: Callable[[Any], str] | None = None,
        args: str = "",
    ) -> None: ...


#: the syntax of ``qe-service create`` (printed whole when it is incomplete or wrong)
CREATE_SYNTAX = (
    "dst A.B.C.D [key-length N] [layer 1|2|3] [algorithm N] "
    "[refresh time|volume|none V] [bandwidth B] [delegate] [wait]"
)


def register(table: CommandRegistry, node: QeNode) -> None:
    """Register the QE and RSVP commands of ``node`` in ``table``."""
    c = _Commands(node)
    table.register(
        "qe-service create",
        c.create,
        "new QE service (wait: until it is up or failed)",
        text=render_services,
        args=CREATE_SYNTAX,
    )
    table.register(
        "qe-service delete", c.delete, "tear a QE service down", text=render_services, args="ID"
    )
    table.register(
        "qe-service wait",
        c.wait,
        "until the service is up or failed",
        text=render_services,
        args="ID [timeout S]",
    )
    table.register(
        "qe-service traffic",
        c.traffic,
        "count traffic for volume refresh",
        text=render_services,
        args="ID BYTES | ID rate BPS",
    )
    table.register(
        "show qe-service",
        c.show,
        "QE services, keys by fingerprint",
        text=render_services,
        args="[ID]",
    )
    table.register("show mpls lsp", c.lsps, "RSVP-TE LSPs", text=render_lsps)
    table.register(
        "show rsvp neighbor", c.neighbors, "RSVP neighbours (Hello)", text=render_neighbors
    )


def created(actions: list[Action]) -> str:
    """The ID of the service a :class:`Create` made (its first ``ServiceChanged``)."""
    return next(a.service_id for a in actions if isinstance(a, ServiceChanged))


class _Commands:
    def __init__(self, node: QeNode) -> None:
        self.node = node

    def _one(self, s: Service) -> dict[str, Any]:
        return {"services": [s.as_json(self.node.now(), self.node.core.site_names)]}

    def _outcome(self, s: Service) -> dict[str, Any] | Failed:
        """The service; a :class:`Failed` one when it ended failed (the CLI's status 1)."""
        data = self._one(s)
        return Failed(data, s.error or "failed") if s.state == FAILED else data

    async def create(self, args: list[str]) -> dict[str, Any] | Failed:
        delegate = "delegate" in args  # to the stateful PCE (RFC 8231), which may move it
        dst, params, bw, wait = parse_create([a for a in args if a != "delegate"])
        s = self.node.core.find(created(self.node.feed(Create(dst, params, bw, delegate))))
        if wait:
            await self.node.wait(s.id)
            return self._outcome(s)
        return self._one(s)

    def delete(self, args: list[str]) -> dict[str, Any]:
        if len(args) != 1:
            raise QeServiceError("usage: qe-service delete ID")
        s = self.node.core.find(args[0])
        self.node.feed(Delete(s.id))
        return self._one(s)

    async def wait(self, args: list[str]) -> dict[str, Any] | Failed:
        if len(args) not in (1, 3) or (len(args) == 3 and args[1] != "timeout"):
            raise QeServiceError("usage: qe-service wait ID [timeout S]")
        timeout = float(args[2]) if len(args) == 3 else 30.0
        return self._outcome(await self.node.wait(args[0], timeout))

    def traffic(self, args: list[str]) -> dict[str, Any]:
        if len(args) == 2:
            event: Event = AddTraffic(args[0], _int_arg("BYTES", args[1]))
        elif len(args) == 3 and args[1] == "rate":
            event = SetRate(args[0], _bandwidth(args[2]))
        else:
            raise QeServiceError("usage: qe-service traffic ID BYTES | ID rate BPS")
        s = self.node.core.find(args[0])
        self.node.feed(event)
        return self._one(s)

    def show(self, args: list[str]) -> dict[str, Any]:
        core = self.node.core
        if args:
            return self._one(core.find(args[0]))
        now = self.node.now()
        return {
            "node": core.name,
            "router_id": str(core.router_id),
            "pcep": "up" if self.node.pcep_up else "down",
            "services": [s.as_json(now, core.site_names) for s in core.services()],
            "counters": dict(core.counters),
        }

    def lsps(self, args: list[str]) -> dict[str, Any]:
        return {"node": self.node.core.name, "lsps": self.node.rsvp_status()["lsps"]}

    def neighbors(self, args: list[str]) -> dict[str, Any]:
        st = self.node.rsvp_status()
        return {
            "node": self.node.core.name,
            "neighbors": st["neighbors"],
            "counters": st["counters"],
        }


# --- parsing ---------------------------------------------------------------------------


def _int_arg(name: str, v: str) -> int:
    try:
        return int(v)
    except ValueError:
        raise QeServiceError(f"{name} must be a whole number, not {v!r}") from None


_UNITS = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def _bandwidth(v: str) -> float:
    """Bits per second: ``10G``, ``100M``, ``2.5g``, ``1000``."""
    t = v.strip().lower().removesuffix("bps")
    unit = t[-1] if t and t[-1] in "kmgt" else ""
    try:
        x = float(t[: len(t) - len(unit)]) * _UNITS[unit]
    except ValueError:
        raise QeServiceError(f"bad bandwidth {v!r} (e.g. 10G, 100M)") from None
    if not math.isfinite(x) or x < 0:
        raise QeServiceError(f"bad bandwidth {v!r}")
    return x


_REFRESH_TYPES = {"time": 1, "volume": 2, "none": 0}
_INT_OPTIONS = {"key-length": "key_length", "layer": "enc_layer", "algorithm": "algorithm"}


def parse_create(args: list[str]) -> tuple[IPv4Address, qe.QeParams, float, bool]:
    """``dst A.B.C.D [key-length N] [layer L] [algorithm N] [refresh time|volume|none V]
    [bandwidth B] [wait]`` → (destination, parameters, bandwidth in bit/s, wait)."""
    words = list(args)
    dst: IPv4Address | None = None
    kw: dict[str, int] = {}
    bw = 0.0
    wait = False
    i = 0
    while i < len(words):
        w = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else None
        if w == "wait":
            wait = True
            i += 1
            continue
        if nxt is None:
            raise QeServiceError(f"{w!r} needs a value")
        if w == "dst":
            try:
                dst = IPv4Address(nxt)
            except ValueError:
                raise QeServiceError(f"dst {nxt!r} is not an IPv4 address") from None
        elif w in _INT_OPTIONS:
            kw[_INT_OPTIONS[w]] = _int_arg(w, nxt)
        elif w == "refresh":
            i += _parse_refresh(words, i, kw)
            continue
        elif w == "bandwidth":
            bw = _bandwidth(nxt)
        else:
            raise QeServiceError(f"unknown argument {w!r}")
        i += 2
    if dst is None:
        raise QeServiceError(f"usage: qe-service create {CREATE_SYNTAX}")
    return dst, qe.QeParams(**kw), bw, wait


def _parse_refresh(words: list[str], i: int, kw: dict[str, int]) -> int:
    """``refresh time|volume V`` or ``refresh none`` at ``words[i]``; how many words."""
    kind = words[i + 1]
    if kind not in _REFRESH_TYPES:
        raise QeServiceError("refresh takes time, volume or none")
    kw["refresh_type"] = _REFRESH_TYPES[kind]
    if kind == "none":
        kw["refresh_value"] = 0
        return 2
    if i + 2 >= len(words):
        raise QeServiceError(f"refresh {kind} needs a value")
    kw["refresh_value"] = _int_arg("refresh value", words[i + 2])
    return 3


# --- rendering -------------------------------------------------------------------------


def render_services(data: dict[str, Any]) -> str:
    rows = data.get("services", [])
    head = ""
    if "node" in data:
        head = f"QE services at {data['node']} ({data['router_id']}), PCEP session {data['pcep']}\n"
    if not rows:
        return head + "no QE services"
    lines = [
        f"{'ID':<12} {'role':<5} {'state':<11} {'peer':<15} {'handle':<9} {'idx':>4} "
        f"{'fingerprint':<16} {'refr':>4}  path"
    ]
    for r in rows:
        peer = r.get("destination") or r.get("source") or ""
        idx = "-" if r["key_index"] is None else str(r["key_index"])
        lines.append(
            f"{r['id']:<12} {r['role']:<5} {r['state']:<11} {peer:<15} "
            f"{r['key_handle_prefix'] or '-':<9} {idx:>4} {r['fingerprint'] or '-':<16} "
            f"{r['refresh_count']:>4}  {' '.join(r['path'])}"
        )
        if r.get("relay_path"):
            sites = [
                f"{x} ({n})" if n != "?" else x
                for x, n in zip(r["relay_path"], r["relay_kms"], strict=True)
            ]
            lines.append(f"{'':<12} key relay: {' > '.join(sites)}")
        if r.get("refresh_failures"):
            last = f", last: {r['refresh_error']}" if r.get("refresh_error") else ""
            lines.append(
                f"{'':<12} refresh failures {r['refresh_failures']}"
                f" (no key {r['refresh_no_key']}){last}"
            )
        if r.get("error"):
            code = f" (code {r['code'][0]}/{r['code'][1]})" if r.get("code") else ""
            lines.append(f"{'':<12} error{code}: {r['error']}")
    return head + "\n".join(lines)


def render_lsps(data: dict[str, Any]) -> str:
    rows = data["lsps"]
    if not rows:
        return "no LSPs"
    lines = [f"{'LSP':<30} {'role':<8} {'state':<12} {'in':<8} {'out':<8} {'handle':<9}"]
    for r in rows:
        inn = f"{r['in_if']}/{r['in_lambda']}" if r["in_if"] is not None else "-"
        out = f"{r['out_if']}/{r['out_lambda']}" if r["out_if"] is not None else "-"
        lines.append(
            f"{r['lsp']:<30} {r['role']:<8} {r['state']:<12} {inn:<8} {out:<8} "
            f"{r['key_handle_prefix'] or '-':<9}"
        )
    return "\n".join(lines)


def render_neighbors(data: dict[str, Any]) -> str:
    lines = [f"{'neighbor':<15} {'state':<5} {'instance':>10} {'last heard (s)':>15}"]
    for n in data["neighbors"]:
        lines.append(
            f"{n['address']:<15} {'up' if n['up'] else 'down':<5} {n['instance']:>10} "
            f"{'-' if n['last_heard_s'] is None else n['last_heard_s']:>15}"
        )
    return "\n".join(lines)
