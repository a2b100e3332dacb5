"""Low-level helpers: entering a network namespace, finding and ending its processes.

``setns(2)`` with ``CLONE_NEWNET`` moves only the calling thread, so :func:`in_netns`
switches the current thread into a namespace and back (sockets opened inside stay in that
namespace for their whole life), and :func:`preexec` makes a child enter one between
``fork`` and ``exec`` (what ``ip netns exec`` does, without its ``/sys`` remount).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from pyroute2 import IPRoute

from daemonkit import netns

NETNS_DIR = netns.NETNS_DIR
CLONE_NEWNET = netns.CLONE_NEWNET

_libc: ctypes.CDLL | None = None


_setns = netns.setns


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def netns_exists(name: str) -> bool:
    return netns_path(name).exists()


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def in_netns(name: str) -> contextlib.AbstractContextManager[None]:
    """Run the body with the current thread in namespace ``name``, then switch back."""
    return netns.entered(name)


MS_BIND, MS_REC, MS_SHARED = 0x1000, 0x4000, 0x100000
_rundir_shared = False


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return _libc


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def create_netns(name: str) -> None:
    """Create a named network namespace like ``ip netns add`` does, in-process: the
    calling thread unshares a new namespace, it is bind-mounted on ``/run/netns/NAME``
    (a shared mount, so other mount namespaces see it), and the thread switches back."""
    global _rundir_shared
    libc = _c()
    NETNS_DIR.mkdir(parents=True, exist_ok=True)
    if not _rundir_shared:
        d = str(NETNS_DIR).encode()
        if libc.mount(b"", d, b"none", MS_SHARED | MS_REC, None) != 0:
            _check(libc.mount(d, d, b"none", MS_BIND | MS_REC, None), "bind /run/netns")
            _check(libc.mount(b"", d, b"none", MS_SHARED | MS_REC, None), "share /run/netns")
        _rundir_shared = True
    path = netns_path(name)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _check(libc.unshare(CLONE_NEWNET), "unshare")
        try:
            src = b"/proc/thread-self/ns/net"
            _check(libc.mount(src, str(path).encode(), b"none", MS_BIND, None), "bind netns")
        finally:
            _setns(own)
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    finally:
        os.close(own)


@contextlib.contextmanager
def iproute_in(name: str) -> Iterator[IPRoute]:
    """A pyroute2 ``IPRoute`` whose netlink socket lives in namespace ``name`` (opened
    by this thread while inside it; no helper process as with ``NetNS``)."""
    with in_netns(name):
        ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def socket_in(
    name: str, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
) -> socket.socket:
    """A socket that lives in namespace ``name``."""
    with in_netns(name):
        return socket.socket(family, type, proto)


def write_sysctl_in(name: str, settings: dict[str, str]) -> None:
    """Write ``/proc/sys`` entries (``net/ipv6/conf/all/disable_ipv6``) inside a namespace."""
    with in_netns(name):
        for key, value in settings.items():
            Path("/proc/sys", key).write_text(value)


def preexec(name: str) -> Callable[[], None]:
    """A ``preexec_fn`` that moves the child into namespace ``name``.

    The namespace file is opened in the parent, so a missing namespace fails loudly there
    and the child does nothing but one system call.
    """
    fd = os.open(netns_path(name), os.O_RDONLY)

    def enter() -> None:
        _setns(fd)

    # the parent's copy is closed by the garbage collector of the closure's owner;
    # callers use :func:`closing_preexec` to close it deterministically
    enter.fd = fd  # type: ignore[attr-defined]
    return enter


@contextlib.contextmanager
def closing_preexec(name: str) -> Iterator[Callable[[], None]]:
    fn = preexec(name)
    try:
        yield fn
    finally:
        os.close(fn.fd)  # type: ignore[attr-defined]


# --- processes -------------------------------------------------------------------------


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22),
    or None when it is gone or a zombie. Together with the pid it names a process uniquely,
    so a recycled pid is never signalled by mistake."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = stat[stat.rfind(")") + 2 :].split()
    if rest[0] in ("Z", "X"):
        return None
    return int(rest[19])


def alive(pid: int, started: int | None = None) -> bool:
    st = start_time(pid)
    return st is not None and (started is None or st == started)


def pids_in_netns(names: Iterable[str]) -> dict[int, str]:
    """Every live process whose network namespace is one of ``names``: {pid: namespace}."""
    inodes: dict[tuple[int, int], str] = {}
    for n in names:
        try:
            st = os.stat(netns_path(n))
        except FileNotFoundError:
            continue
        inodes[(st.st_dev, st.st_ino)] = n
    found: dict[int, str] = {}
    if not inodes:
        return found
    own = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == own:
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except (FileNotFoundError, ProcessLookupError, PermissionError, NotADirectoryError):
            continue
        key = (st.st_dev, st.st_ino)
        if key in inodes and start_time(int(entry)) is not None:
            found[int(entry)] = inodes[key]
    return found


def terminate(pids: dict[int, int | None], grace: float = 3.0, group: bool = True) -> list[int]:
    """SIGTERM each ``{pid: start_time}`` (its process group when it leads one), wait up to
    ``grace`` seconds, then SIGKILL what is left. Returns the pids that needed SIGKILL."""

    def signal_all(sig: int, which: Iterable[int]) -> None:
        for pid in which:
            if not alive(pid, pids[pid]):
                continue
            try:
                if group and os.getpgid(pid) == pid:
                    os.killpg(pid, sig)
                else:
                    os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    live = [p for p in pids if alive(p, pids[p])]
    signal_all(signal.SIGTERM, live)
    deadline = time.monotonic() + grace
    while live and time.monotonic() < deadline:
        _reap(live)
        live = [p for p in live if alive(p, pids[p])]
        if live:
            time.sleep(0.02)
    killed = list(live)
    signal_all(signal.SIGKILL, killed)
    deadline = time.monotonic() + 2.0
    while killed and time.monotonic() < deadline:
        _reap(killed)
        if not [p for p in killed if alive(p, pids[p])]:
            break
        time.sleep(0.02)
    return killed


def _reap(pids: Iterable[int]) -> None:
    """Collect those of ``pids`` that are our own exited children (no zombies left)."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
