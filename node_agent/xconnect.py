"""The node's cross-connects: what the RSVP core's :class:`CrossConnect` actions become in
the kernel (docs/dataplane.md, "Optical layer and cross-connects").

- At a transit node each direction of the LSP is one tc rule on the incoming channel:
  ``clsact`` qdisc, ingress filter ``u32 match u32 0 0`` (every frame) with the action
  ``mirred egress redirect dev OUT``, installed over rtnetlink (:mod:`node_agent.tcnl`;
  :class:`TcRules` runs the same operations through the ``tc`` command). A frame that
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

import asyncio
import contextlib
import logging
import re
import subprocess
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from daemonkit import netns
from daemonkit.ratelog import RateLimitedLog
from gmpls.dataplane.names import channel_ifname
from gmpls.rsvp import events as E
from node_agent.tcnl import NetlinkTc, TcOp, clear_ops, redirect_ops, unredirect_ops

log = logging.getLogger("node_agent.xconnect")


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


def _name(c: E.Channel | None, access_if: str | None) -> str | None:
    return access_if if c is None else channel_ifname(c.local_if, c.lam)


def _rules(cc: E.CrossConnect) -> list[tuple[str, str]]:
    """(in, out) channel names of each direction of a transit cross-connect."""
    out = []
    for a, b in ((cc.fwd_in, cc.fwd_out), (cc.rev_in, cc.rev_out)):
        if a is not None and b is not None:
            out.append((channel_ifname(a.local_if, a.lam), channel_ifname(b.local_if, b.lam)))
    return out


class Runner(Protocol):
    """What carries out a cross-connect's :class:`~node_agent.tcnl.TcOp` list: the
    failure, or None."""

    def run(self, ops: list[TcOp]) -> str | None: ...
    async def run_async(self, ops: list[TcOp]) -> str | None: ...
    def close(self) -> None: ...


class TcRules:
    """The same operations through the ``tc`` command (``tc -force -batch -``: one
    process per cross-connect, all its lines in one batch), for a namespace the daemon is
    not in (``ip netns exec NS tc``) and for comparison. Line numbers in tc's ``Command
    failed -:N`` tell which line failed."""

    def __init__(self, command: Sequence[str] = ("tc",)) -> None:
        #: how to run tc (``ip netns exec NS tc`` from outside the namespace)
        self.command = tuple(command)

    @staticmethod
    def redirect_lines(src: str, dst: str) -> list[str]:
        """Every frame arriving on ``src`` leaves on ``dst``: the first line removes what
        may be left (its failure is expected and ignored), the others must succeed."""
        return [op.line() for op in redirect_ops(src, dst)]

    def _argv(self) -> list[str]:
        """tc's command line; in a pack (docs/scale.md) with ``-n HOST``: tc enters the
        daemon's namespace itself (cheaper than ``ip netns exec``, which also remounts
        /sys)."""
        ns = netns.current()
        return [*self.command, *(("-n", ns) if ns else ()), "-force", "-batch", "-"]

    @staticmethod
    def _failure(lines: list[str], rc: int, stderr: str) -> str | None:
        """The reason of the first failed line that is not a ``del`` (None: all went)."""
        if rc == 0:
            return None
        why: list[str] = []
        for line in stderr.splitlines():
            m = re.match(r"Command failed -:(\d+)", line)
            if m is None:
                why.append(line.strip())
                continue
            n = int(m.group(1))
            if 0 < n <= len(lines) and not lines[n - 1].startswith(("qdisc del", "filter del")):
                cause = "; ".join(w for w in why if w) or "failed"
                return f"tc {lines[n - 1].split(' dev ')[0]} on {lines[n - 1].split()[3]}: {cause}"
            why = []
        return None

    def close(self) -> None:
        return None

    def run(self, ops: list[TcOp]) -> str | None:
        """Run ``ops`` now (blocking); the failure, or None."""
        lines = [op.line() for op in ops]
        try:
            r = subprocess.run(
                self._argv(),
                input="\n".join(lines) + "\n",
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"tc: {e}"
        return self._failure(lines, r.returncode, r.stderr)

    async def run_async(self, ops: list[TcOp]) -> str | None:
        """:meth:`run` without blocking the event loop."""
        lines = [op.line() for op in ops]
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._argv(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await asyncio.wait_for(
                proc.communicate(("\n".join(lines) + "\n").encode()), timeout=30
            )
        except (OSError, TimeoutError) as e:
            return f"tc: {e}"
        assert proc.returncode is not None
        return self._failure(lines, proc.returncode, err.decode(errors="replace"))


def _until_failure(tc: Runner, jobs: list[list[TcOp]]) -> list[str | None]:
    """Run ``jobs`` in order (blocking, in the worker thread) until one fails: the result
    of each job run, the failed one last."""
    out: list[str | None] = []
    for ops in jobs:
        out.append(tc.run(ops))
        if out[-1] is not None:
            break
    return out


class CrossConnects:
    """The cross-connects of one node: transit ones in the kernel (:class:`TcRules`, run
    in order by one asyncio task, in a worker thread, so that the event loop never waits
    for the kernel or ``tc``; at once
    when no loop runs), head and tail ones recorded (and passed to ``dataplane``, if any).

    A transit cross-connect that fails calls ``on_failure(lsp, reason)`` (the RSVP shell
    feeds :class:`CrossConnectFailed` to its core), after a rate-limited log line and a
    count in ``counters["xc_failures"]``."""

    def __init__(
        self,
        node: str,
        channels: Iterable[str] = (),
        *,
        access_if: str | None = None,
        dataplane: Dataplane | None = None,
        tc: Runner | None = None,
        on_failure: Callable[[E.LspKey, str], None] | None = None,
    ) -> None:
        self.node = node
        self.channels = tuple(channels)
        self.access_if = access_if
        self.dataplane: Dataplane = dataplane or NoDataplane()
        self.tc: Runner = tc or NetlinkTc()
        self.on_failure = on_failure
        self.installed: dict[E.LspKey, E.CrossConnect] = {}
        self.counters = {"xc_installed": 0, "xc_removed": 0, "xc_failures": 0}
        self._bad = RateLimitedLog(log, {"node": node})
        self._jobs: deque[tuple[E.LspKey, E.CrossConnect | None, list[TcOp]]] = deque()
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._busy = False  # a job is running
        #: channels given a clsact qdisc of ours (kept until stop: a cross-connect is then
        #: one filter added and, at its removal, taken off)
        self._clsact: set[str] = set()

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Remove what an earlier run left on the channels, then take jobs."""
        if self.channels:
            await self.tc.run_async(clear_ops(self.channels))
        self._wake = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        """Remove every cross-connect (the jobs queued first) and the qdiscs, then stop."""
        for lsp in list(self.installed):
            self.remove(lsp)
        if self._worker is not None:
            while self._jobs or self._busy:
                assert self._wake is not None
                self._wake.set()
                await asyncio.sleep(0.01)
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._clsact:
            await self.tc.run_async(clear_ops(sorted(self._clsact)))
            self._clsact.clear()
        self.tc.close()
        self._bad.close()

    # --- the RSVP core's actions ----------------------------------------------------------

    def apply(self, a: E.CrossConnect | E.CrossConnectRemoved) -> None:
        """Carry out one action (a transit one queued for ``tc``)."""
        if isinstance(a, E.CrossConnectRemoved):
            self.remove(a.lsp)
            return
        if a.lsp in self.installed:
            self.remove(a.lsp)
        self.installed[a.lsp] = a
        if a.role != "transit":
            try:
                self.dataplane.attach(a)
            except Exception as e:
                self._failed(a, str(e) or type(e).__name__)
                return
            self._done(a)
            return
        ops: list[TcOp] = []
        for src, dst in _rules(a):
            ops += redirect_ops(src, dst, fresh=src not in self._clsact)
            self._clsact.add(src)
        self._submit(a.lsp, a, ops)

    def remove(self, lsp: E.LspKey) -> None:
        cc = self.installed.pop(lsp, None)
        if cc is None:
            return
        if cc.role == "transit":
            self._submit(lsp, None, unredirect_ops(src for src, _ in _rules(cc)))
        else:
            try:
                self.dataplane.detach(lsp)
            except Exception:
                log.exception("data plane detach failed", extra={"node": self.node})
        self.counters["xc_removed"] += 1
        log.info("cross-connect removed", extra={"node": self.node, "lsp": str(lsp)})

    # --- plumbing -------------------------------------------------------------------------

    def _submit(self, lsp: E.LspKey, cc: E.CrossConnect | None, ops: list[TcOp]) -> None:
        if self._wake is None:  # no event loop: at once
            self._finish(lsp, cc, self.tc.run(ops))
            return
        self._jobs.append((lsp, cc, ops))
        self._wake.set()

    async def _work(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._jobs:
                # the jobs queued by now go to the worker thread together: a burst of
                # LSPs queues hundreds, and a thread hand-off each cost a transit node
                # about a tenth of its CPU; one that fails ends the trip, so that its
                # clean-up (_finish) comes before the next job, as one at a time
                batch = list(self._jobs)
                self._jobs.clear()
                self._busy = True
                try:
                    results = await asyncio.to_thread(
                        _until_failure, self.tc, [ops for _, _, ops in batch]
                    )
                finally:
                    self._busy = False
                self._jobs.extendleft(reversed(batch[len(results) :]))
                for (lsp, cc, _), err in zip(batch, results, strict=False):
                    self._finish(lsp, cc, err)

    def _finish(self, lsp: E.LspKey, cc: E.CrossConnect | None, err: str | None) -> None:
        if cc is None:  # a removal: nothing to report (the channel may be gone already)
            return
        if err is None:
            self._done(cc)
        elif self.installed.get(lsp) is cc:  # not replaced or removed meanwhile
            del self.installed[lsp]
            srcs = [src for src, _ in _rules(cc)]
            self.tc.run(clear_ops(srcs))  # the qdisc too: the next one starts afresh
            self._clsact.difference_update(srcs)
            self._failed(cc, err)

    def _done(self, cc: E.CrossConnect) -> None:
        self.counters["xc_installed"] += 1
        log.info(
            "cross-connect installed",
            extra={"node": self.node, "lsp": str(cc.lsp), **_flat(self.describe(cc))},
        )

    def _failed(self, cc: E.CrossConnect, reason: str) -> None:
        self.counters["xc_failures"] += 1
        self._bad.log(
            logging.WARNING,
            "cross-connect failed",
            {"lsp": str(cc.lsp), "role": cc.role, "reason": reason},
        )
        if self.on_failure is not None:
            self.on_failure(cc.lsp, reason)

    # --- what show mpls lsp shows ---------------------------------------------------------

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
