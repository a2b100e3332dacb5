"""A transit cross-connect's tc rules spoken to the kernel over rtnetlink, without the
``tc`` command (docs/dataplane.md, "Optical layer and cross-connects").

A cross-connect is one ingress filter per direction on the incoming channel (:class:`TcOp`):
``u32 match u32 0 0`` (every frame) whose action is ``mirred egress redirect`` to the
outgoing channel, in a ``clsact`` qdisc. The first time a channel carries one, the
qdisc is made: any ``clsact`` qdisc taken off (a failure is expected and ignored), one
added. The qdisc then stays while the agent runs: a later cross-connect on the channel
takes off any filter of its priority (expected to fail) and adds its own, and a removal
takes the filter off (:func:`redirect_ops`, :func:`unredirect_ops`), two operations
instead of four, and no qdisc made and destroyed per LSP. :meth:`TcOp.line` is the same
operation as a line of ``tc -batch``; :func:`encode` is the same operation as the
rtnetlink request ``tc`` sends for it (RTM_NEWQDISC / RTM_DELQDISC / RTM_NEWTFILTER /
RTM_DELTFILTER with a ``tcmsg``, the u32 selector of one match-all key and the mirred
action's parameters: the kernel installs the same rules,
tests/rsvp/test_xconnect_netns.py), and :func:`ack` reads the kernel's answer.

Why not ``tc``: a cross-connect through ``tc`` is a fork and exec of the node agent and a
``tc`` process that dumps every link of the namespace to find two names, 2.6 ms of CPU for
``tc`` alone with the 600 interfaces of a node of 216 lambdas, against about 0.3 ms here;
a burst of 200 services over the paper's three transit nodes is 1,200 of them (an install
and a removal each).

:class:`NetlinkTc` runs the operations on one NETLINK_ROUTE socket made in the daemon's
namespace (:mod:`daemonkit.netns`), in a worker thread when an event loop runs, so that a
kernel holding its routing lock for someone else never stops the loop.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from daemonkit import netns

NETLINK_ROUTE = 0
NLMSG_ERROR = 2
RTM_NEWQDISC = 36
RTM_DELQDISC = 37
RTM_NEWTFILTER = 44
RTM_DELTFILTER = 45
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
#: the clsact qdisc: parent TC_H_CLSACT, handle ffff:, its ingress hook ffff:fff2
TC_H_CLSACT = 0xFFFFFFF1
CLSACT_HANDLE = 0xFFFF0000
INGRESS_PARENT = 0xFFFFFFF2
ETH_P_ALL = 0x0003
TCA_KIND = 1
TCA_OPTIONS = 2
TCA_U32_SEL = 5
TCA_U32_ACT = 7
TC_U32_TERMINAL = 1
TCA_ACT_KIND = 1
TCA_ACT_OPTIONS = 2
TCA_MIRRED_PARMS = 2
TC_ACT_STOLEN = 4
TCA_EGRESS_REDIR = 1
#: the filter's priority (``prio 1``)
PRIO = 1
#: seconds to wait for the kernel's answer (it answers within the request's system call)
ANSWER_TIMEOUT = 5.0

_NLMSG = struct.Struct("=IHHII")
_TCMSG = struct.Struct("=BxxxiIII")


@dataclass(frozen=True)
class TcOp:
    """One tc operation on ``dev``: ``del`` / ``add`` its clsact qdisc, ``redirect``
    every frame arriving on it to ``to``, or ``unredirect`` (take that filter off)."""

    verb: str
    dev: str
    to: str = ""

    def line(self) -> str:
        """The operation as a line of ``tc -batch``."""
        if self.verb == "del":
            return f"qdisc del dev {self.dev} clsact"
        if self.verb == "add":
            return f"qdisc add dev {self.dev} clsact"
        if self.verb == "unredirect":
            return f"filter del dev {self.dev} ingress protocol all prio {PRIO}"
        return (
            f"filter add dev {self.dev} ingress protocol all prio {PRIO} u32 match u32 0 0 "
            f"action mirred egress redirect dev {self.to}"
        )

    @property
    def expected_to_fail(self) -> bool:
        """A removal of what may not be there."""
        return self.verb in ("del", "unredirect")

    def what(self) -> str:
        """How a failure names the operation (as ``tc`` did: ``tc filter add on te2l1``)."""
        kind = "qdisc" if self.verb in ("del", "add") else "filter"
        return f"tc {kind} {'add' if self.verb in ('add', 'redirect') else 'del'} on {self.dev}"


def redirect_ops(src: str, dst: str, *, fresh: bool = True) -> list[TcOp]:
    """Every frame arriving on ``src`` leaves on ``dst``. ``fresh``: ``src`` has no
    qdisc of ours yet (whatever ``clsact`` is there is replaced); otherwise it has, and
    only its filter is replaced."""
    if fresh:
        return [TcOp("del", src), TcOp("add", src), TcOp("redirect", src, dst)]
    return [TcOp("unredirect", src), TcOp("redirect", src, dst)]


def unredirect_ops(ifnames: Iterable[str]) -> list[TcOp]:
    """The redirect filter off each of ``ifnames`` (their qdiscs stay)."""
    return [TcOp("unredirect", i) for i in ifnames]


def clear_ops(ifnames: Iterable[str]) -> list[TcOp]:
    """The clsact qdisc (and with it every rule) off each of ``ifnames``."""
    return [TcOp("del", i) for i in ifnames]


# --- the codec ---------------------------------------------------------------------------


def _attr(kind: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + bytes(-n % 4)


def encode(op: TcOp, seq: int, ifindex: int, to_ifindex: int = 0) -> bytes:
    """``op`` as one rtnetlink request with sequence number ``seq``."""
    if op.verb == "del":
        kind, flags = RTM_DELQDISC, 0
        body = _TCMSG.pack(socket.AF_UNSPEC, ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0)
        body += _attr(TCA_KIND, b"clsact\0")
    elif op.verb == "add":
        kind, flags = RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL
        body = _TCMSG.pack(socket.AF_UNSPEC, ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0)
        body += _attr(TCA_KIND, b"clsact\0")
    elif op.verb == "unredirect":
        # handle 0: the whole filter of this priority and protocol goes
        kind, flags = RTM_DELTFILTER, 0
        info = (PRIO << 16) | socket.htons(ETH_P_ALL)
        body = _TCMSG.pack(socket.AF_UNSPEC, ifindex, 0, INGRESS_PARENT, info)
    else:
        kind, flags = RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL
        info = (PRIO << 16) | socket.htons(ETH_P_ALL)
        body = _TCMSG.pack(socket.AF_UNSPEC, ifindex, 0, INGRESS_PARENT, info)
        # tc_u32_sel: flags, offshift, nkeys, offmask, off, offoff, hoff, hmask; one key
        # tc_u32_key: mask 0, val 0, off 0, offmask 0 (matches every frame)
        sel = struct.pack("=BBBxHHhhI", TC_U32_TERMINAL, 0, 1, 0, 0, 0, 0, 0) + bytes(16)
        # tc_mirred: index, capab, action, refcnt, bindcnt, eaction, ifindex
        parms = struct.pack("=IIiiiiI", 0, 0, TC_ACT_STOLEN, 0, 0, TCA_EGRESS_REDIR, to_ifindex)
        action = _attr(TCA_ACT_KIND, b"mirred\0") + _attr(
            TCA_ACT_OPTIONS, _attr(TCA_MIRRED_PARMS, parms)
        )
        options = _attr(TCA_U32_SEL, sel) + _attr(TCA_U32_ACT, _attr(1, action))
        body += _attr(TCA_KIND, b"u32\0") + _attr(TCA_OPTIONS, options)
    head = _NLMSG.pack(_NLMSG.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, seq, 0)
    return head + body


def ack(data: bytes) -> dict[int, int]:
    """The answers in ``data`` (one or more netlink messages): sequence number -> errno
    (0: done)."""
    out: dict[int, int] = {}
    at = 0
    while at + _NLMSG.size <= len(data):
        length, kind, _flags, seq, _pid = _NLMSG.unpack_from(data, at)
        if length < _NLMSG.size:
            break
        if kind == NLMSG_ERROR and length >= _NLMSG.size + 4:
            (err,) = struct.unpack_from("=i", data, at + _NLMSG.size)
            out[seq] = -err
        at += (length + 3) & ~3
    return out


# --- the runner --------------------------------------------------------------------------


def _cause(e: int, missing: str = "") -> str:
    if missing:
        return f'Cannot find device "{missing}"'
    if e == errno.EEXIST:
        return "Exclusivity flag on, cannot modify"
    return os.strerror(e)


class NetlinkTc:
    """Runs :class:`TcOp` lists over rtnetlink in the daemon's namespace: :meth:`run`
    blocking, :meth:`run_async` in a worker thread. Each returns the failure of the first
    operation that is not :attr:`TcOp.expected_to_fail`, worded as ``tc`` worded it
    (``tc filter add on te2l1: Cannot find device "te3l7"``), or None."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._seq = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def run(self, ops: list[TcOp]) -> str | None:
        with self._lock:
            try:
                if self._sock is None:
                    with netns.inside():
                        self._sock = socket.socket(
                            socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE
                        )
                    self._sock.bind((0, 0))
                    self._sock.settimeout(ANSWER_TIMEOUT)
                for op in ops:
                    why = self._one(self._sock, op)
                    if why is not None and not op.expected_to_fail:
                        return f"{op.what()}: {why}"
            except OSError as e:
                return f"netlink: {e}"
            return None

    async def run_async(self, ops: list[TcOp]) -> str | None:
        # to_thread copies the context: the thread knows the daemon's namespace
        return await asyncio.to_thread(self.run, ops)

    def _index(self, name: str) -> int | None:
        try:
            return netns.if_nametoindex(name)
        except OSError:
            return None

    def _one(self, sock: socket.socket, op: TcOp) -> str | None:
        ifindex = self._index(op.dev)
        if ifindex is None:
            return _cause(0, op.dev)
        to = 0
        if op.verb == "redirect":
            found = self._index(op.to)
            if found is None:
                return _cause(0, op.to)
            to = found
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        sock.send(encode(op, self._seq, ifindex, to))
        while True:
            answers = ack(sock.recv(65536))
            if self._seq in answers:
                e = answers[self._seq]
                return None if e == 0 else _cause(e)
