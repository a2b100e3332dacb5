"""Which network namespace a daemon's sockets live in, so that many daemons can share one
process (``qkdnet up --pack N``, docs/scale.md) and still speak from their own hosts.

A daemon started the usual way (``ip netns exec`` or ``docker exec``, one process each)
runs inside its host's namespace and never switches: :func:`current` is None and
:func:`inside` does nothing. A packed daemon is started in a :class:`contextvars.Context`
that names its namespace (:func:`context`); asyncio copies the context into every task,
timer and socket callback the daemon creates, so wherever the daemon opens a socket (the
OSPF, RSVP and data-plane raw sockets, the CLI and PCEP servers and clients, the ETSI and
IDQ3P datagram endpoints) it does so with :func:`socket` or inside :func:`inside`: the
calling thread enters the namespace with ``setns(2)``, creates the socket and comes back
before anything else runs. A socket belongs to the namespace it was created in for its
whole life, so the packets on the wire are the same as with one process per daemon.
Commands a daemon runs (``tc``) get the namespace on their command line (``tc -n``).

``setns`` with ``CLONE_NEWNET`` moves only the calling thread; nothing here may await
between entering and leaving.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import ctypes.util
import os
import socket as _socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar, cast

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000

#: the namespace of the daemon whose code is running (None: the process's own)
NETNS: contextvars.ContextVar[str | None] = contextvars.ContextVar("netns", default=None)

_libc: ctypes.CDLL | None = None


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace open as ``fd``."""
    if hasattr(os, "setns"):  # Python >= 3.12
        os.setns(fd, CLONE_NEWNET)
        return
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def path(name: str) -> Path:
    return NETNS_DIR / name


def current() -> str | None:
    """The namespace of the running daemon, None when it is the process's own."""
    return NETNS.get()


def context(name: str | None) -> contextvars.Context:
    """A copy of the current context in which :func:`current` is ``name``: run a packed
    daemon's ``start`` in it (``asyncio.create_task(coro, context=ctx)``)."""
    ctx = contextvars.copy_context()
    ctx.run(NETNS.set, name)
    return ctx


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """The body runs with this thread in namespace ``name``; then it switches back."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        try:
            target = os.open(path(name), os.O_RDONLY)
        except FileNotFoundError:
            raise FileNotFoundError(f"no network namespace {name}") from None
        try:
            setns(target)
            try:
                yield
            finally:
                setns(own)
        finally:
            os.close(target)
    finally:
        os.close(own)


@contextlib.contextmanager
def inside(name: str | None = None) -> Iterator[None]:
    """The body runs in namespace ``name`` (default: the running daemon's); nothing is
    switched when that is the process's own. Create sockets here, never await here."""
    name = current() if name is None else name
    if name is None:
        yield
        return
    with entered(name):
        yield


def socket(
    family: int = _socket.AF_INET, type: int = _socket.SOCK_STREAM, proto: int = 0
) -> _socket.socket:
    """A socket in the running daemon's namespace."""
    with inside():
        return _socket.socket(family, type, proto)


def if_nametoindex(ifname: str) -> int:
    """The index of interface ``ifname`` in the running daemon's namespace."""
    with inside():
        return _socket.if_nametoindex(ifname)


# --- asyncio endpoints whose sockets are made in the daemon's namespace ----------------


def _address(host: str | None, port: int, socktype: int) -> tuple[str, int]:
    """``(host, port)`` as an IPv4 socket address (``None`` or "": every address); names
    are resolved in the daemon's namespace (its /etc/hosts; the testbed uses addresses)."""
    if not host:
        return ("0.0.0.0", port)
    with inside():
        info = _socket.getaddrinfo(host, port, _socket.AF_INET, socktype)
    addr = info[0][4]
    return (str(addr[0]), int(addr[1]))


def listening(host: str | None, port: int, *, backlog: int = 100) -> _socket.socket:
    """A TCP socket listening on ``host:port`` (SO_REUSEADDR set) in the daemon's
    namespace, for ``asyncio.start_server(..., sock=)`` or aiohttp's ``SockSite``."""
    s = socket(_socket.AF_INET, _socket.SOCK_STREAM)
    try:
        s.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        s.bind(_address(host, port, _socket.SOCK_STREAM))
        s.listen(backlog)
        s.setblocking(False)
    except OSError:
        s.close()
        raise
    return s


def datagram(
    local: tuple[str, int] | None = None, remote: tuple[str, int] | None = None
) -> _socket.socket:
    """A UDP socket in the daemon's namespace, bound to ``local`` and connected to
    ``remote`` when given, for ``loop.create_datagram_endpoint(..., sock=)``."""
    s = socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        if local is not None:
            s.bind(_address(local[0], local[1], _socket.SOCK_DGRAM))
        if remote is not None:
            s.connect(_address(remote[0], remote[1], _socket.SOCK_DGRAM))
    except OSError:
        s.close()
        raise
    return s


#: the largest UDP payload there is: what a datagram endpoint reads at most
MAX_DATAGRAM = 65535

#: SO_RCVBUFFORCE (Linux; the socket module does not name it)
SO_RCVBUFFORCE = 33

#: a datagram endpoint's receive buffer: what a burst may queue while the loop is busy
RECEIVE_BUFFER = 4 << 20


def receive_buffer(s: _socket.socket, size: int = RECEIVE_BUFFER) -> None:
    """Let ``s`` queue ``size`` bytes of datagrams (with CAP_NET_ADMIN past
    ``net.core.rmem_max``, else up to it): the default (208 KiB, a few hundred small
    datagrams) overflows in a burst, and what overflows is dropped without a word."""
    try:
        s.setsockopt(_socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:
        s.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, size)


P = TypeVar("P", bound=asyncio.DatagramProtocol)


async def datagram_endpoint(
    factory: Callable[[], P],
    local: tuple[str, int] | None = None,
    remote: tuple[str, int] | None = None,
) -> tuple[asyncio.DatagramTransport, P]:
    """``loop.create_datagram_endpoint`` on a :func:`datagram` socket.

    asyncio's selector transport reads every datagram with ``recvfrom(256 KiB)``: a buffer
    above glibc's mmap threshold, so each datagram costs an mmap, an mremap and a munmap
    (13 us more per datagram than a 64 KiB read, measured; more in a process with
    threads). The transport's read size is set to :data:`MAX_DATAGRAM`, which loses
    nothing, on the transports that have one. The socket gets a :func:`receive_buffer`
    (200 setups at once overflowed a key manager's default one: OPENs were lost)."""
    sock = datagram(local, remote)
    receive_buffer(sock)
    t, p = await asyncio.get_running_loop().create_datagram_endpoint(factory, sock=sock)
    if hasattr(t, "max_size"):
        t.max_size = MAX_DATAGRAM
    return cast(asyncio.DatagramTransport, t), p


async def connected(host: str, port: int, local: tuple[str, int] | None = None) -> _socket.socket:
    """A TCP socket connected to ``host:port`` from the daemon's namespace (bound to
    ``local`` first when given), for ``asyncio.open_connection(sock=)``."""
    s = socket(_socket.AF_INET, _socket.SOCK_STREAM)
    try:
        s.setblocking(False)
        if local is not None:
            s.bind(_address(local[0], local[1], _socket.SOCK_STREAM))
        await asyncio.get_running_loop().sock_connect(s, _address(host, port, _socket.SOCK_STREAM))
    except BaseException:
        s.close()
        raise
    return s
