"""Many daemons in one process: ``python -m compose.pack SPEC.json`` (what ``qkdnet up
--pack N`` starts, docs/scale.md).

SPEC.json names the members, each a daemon as ``python -m PACKAGE ARGV...`` would run
it, and the network namespace of its host::

    {"members": [{"host": "tn1", "netns": "qk-tn1", "package": "node_agent",
                  "argv": ["--topology", "...", "--host", "tn1", "--log-file", "..."]}]}

Each member is built from its ``argv`` by its package's ``SPEC`` (the same flags, checks
and exit status 2 as alone) and started in a context that names its namespace
(:mod:`daemonkit.netns`): every socket it opens is created in its host's namespace, so
what it sends and receives on the wire is what it would alone. Its log records go to its
own ``--log-file`` (the member whose code logged them is known from the context).

One event loop runs them all. A member that cannot be built or started stops the pack
(the members started so far are stopped) with the member's name and cause on stderr and
the exit status of a daemon alone: 2 for a bad flag or config, 1 for a start failure.
SIGTERM or SIGINT stops every member, in the reverse order of their start.

The control socket (``--control PATH``, a Unix stream socket): one line per request,
``stop HOST`` stops that member, ``start HOST [ARG ...]`` builds and starts it again (its
argv followed by ARGs), ``list`` names the running ones; each answer is one line,
``ok ...`` or ``error ...``. ``qkdnet stop|start HOST`` use it for a packed host.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import importlib
import json
import logging
import resource
import shlex
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from daemonkit import daemon as dk
from daemonkit import netns
from gmpls.logfmt import JsonFormatter

log = logging.getLogger("compose.pack")

#: the host whose daemon's code is running (None: the pack's own)
HOST: contextvars.ContextVar[str | None] = contextvars.ContextVar("pack_host", default=None)


@dataclass
class Member:
    host: str
    netns: str | None
    package: str
    argv: list[str]
    daemon: dk.Daemon | None = None
    context: contextvars.Context = field(default_factory=contextvars.Context)


class BuildError(Exception):
    """A member could not be built (``status`` is the exit status it would have alone)."""

    def __init__(self, host: str, message: str, status: int) -> None:
        super().__init__(f"{host}: {message}")
        self.status = status


def spec_of(package: str) -> dk.Spec:
    spec = getattr(importlib.import_module(f"{package}.__main__"), "SPEC", None)
    if not isinstance(spec, dk.Spec):
        raise LookupError(f"{package} is not a daemon package (no SPEC in its __main__)")
    return spec


class LogByHost(logging.Handler):
    """Each record to the log file of the member that logged it (the context says which);
    records of no member to ``fallback``."""

    def __init__(self, fallback: logging.Handler) -> None:
        super().__init__()
        self.fallback = fallback
        self.files: dict[str, logging.Handler] = {}

    def add(self, host: str, log_file: str | None, level: int) -> None:
        if host in self.files:
            return
        h: logging.Handler = logging.FileHandler(log_file) if log_file else self.fallback
        h.setFormatter(JsonFormatter())
        h.setLevel(level)
        self.files[host] = h

    def emit(self, record: logging.LogRecord) -> None:
        host = HOST.get()
        h = self.files.get(host, self.fallback) if host is not None else self.fallback
        if record.levelno >= h.level:
            h.handle(record)

    def close(self) -> None:
        for h in self.files.values():
            if h is not self.fallback:
                h.close()
        super().close()


class Pack:
    """The members of one process and how to start and stop them."""

    def __init__(self, members: list[Member], logs: LogByHost) -> None:
        self.members = {m.host: m for m in members}
        self.logs = logs
        self.running: list[str] = []

    def build(self, m: Member, extra: Sequence[str] = ()) -> None:
        spec = spec_of(m.package)
        try:
            a = spec.parse([*m.argv, *extra])
        except SystemExit as e:  # argparse said why on stderr
            raise BuildError(m.host, "bad arguments", int(e.code or dk.EXIT_CONFIG)) from None
        level = logging.DEBUG if a.debug else logging.INFO
        self.logs.add(m.host, a.log_file, level)
        if level < logging.getLogger().level:
            logging.getLogger().setLevel(level)
        m.context = netns.context(m.netns)
        m.context.run(HOST.set, m.host)
        try:
            _, m.daemon = m.context.run(spec.configure, a, logging_to_file=False)
        except dk.CONFIG_ERRORS as e:
            raise BuildError(m.host, dk.one_line(e), dk.EXIT_CONFIG) from None

    async def start(self, m: Member) -> None:
        assert m.daemon is not None
        try:
            await asyncio.create_task(m.daemon.start(), context=m.context)
        except Exception as e:
            m.context.run(
                log.error,
                "cannot start: %s",
                e,
                extra={"host": m.host, "event": "start_failed", "error": f"{e!r}"},
            )
            with contextlib.suppress(Exception):
                await self.stop(m)
            raise BuildError(m.host, f"cannot start: {dk.one_line(e)}", dk.EXIT_START) from e
        self.running.append(m.host)
        m.context.run(log.info, "running", extra={"host": m.host, "event": "start"})

    async def stop(self, m: Member) -> None:
        if m.daemon is None:
            return
        m.context.run(log.info, "stopping", extra={"host": m.host, "event": "stop"})
        with contextlib.suppress(ValueError):
            self.running.remove(m.host)
        daemon, m.daemon = m.daemon, None
        await asyncio.create_task(daemon.stop(), context=m.context)

    async def stop_all(self) -> None:
        for host in reversed(list(self.running)):
            await self.stop(self.members[host])

    async def control(self, line: str) -> str:
        """One control request (see the module's doc); its one-line answer."""
        try:
            words = shlex.split(line)
        except ValueError as e:
            return f"error {e}"
        if words == ["list"]:
            return "ok " + " ".join(self.running)
        if len(words) < 2 or words[0] not in ("stop", "start"):
            return "error requests: stop HOST | start HOST [ARG ...] | list"
        m = self.members.get(words[1])
        if m is None:
            return f"error {words[1]} is not in this pack"
        if words[0] == "stop":
            if m.daemon is None:
                return f"error {m.host} is not running"
            await self.stop(m)
            return f"ok {m.host} stopped"
        if m.daemon is not None:
            return f"error {m.host} is running"
        try:
            self.build(m, words[2:])
            await self.start(m)
        except BuildError as e:
            m.daemon = None
            return f"error {e}"
        return f"ok {m.host} started"


def load_members(path: Path) -> list[Member]:
    doc = json.loads(path.read_text())
    return [
        Member(m["host"], m.get("netns"), m["package"], [str(x) for x in m["argv"]])
        for m in doc["members"]
    ]


async def _serve_control(pack: Pack, path: Path) -> asyncio.AbstractServer:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                writer.write((await pack.control(line.decode(errors="replace")) + "\n").encode())
                await writer.drain()
        writer.close()

    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return await asyncio.start_unix_server(client, path=str(path))


async def run(pack: Pack, control: Path | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        for m in pack.members.values():
            await pack.start(m)
            if stop.is_set():
                break
    except BuildError:
        await pack.stop_all()
        raise
    # what start-up made lives as long as the pack: keep the collector from walking it
    gc.collect()
    gc.freeze()
    server = await _serve_control(pack, control) if control is not None else None
    log.info("pack running", extra={"event": "start", "members": len(pack.running)})
    try:
        await stop.wait()
    finally:
        if server is not None:
            server.close()
        await pack.stop_all()


def main(argv: Sequence[str] | None = None) -> int:
    p = dk.command_parser("compose.pack", __doc__)
    p.add_argument("spec", type=Path, help="the members (JSON)")
    p.add_argument("--control", type=Path, help="the control socket's path")
    p.add_argument("--log-file", help="the pack's own JSON-lines log (default: stderr)")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    # hundreds of daemons hold thousands of sockets: take what the hard limit allows
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    fallback: logging.Handler = (
        logging.FileHandler(a.log_file) if a.log_file else logging.StreamHandler()
    )
    fallback.setFormatter(JsonFormatter())
    logs = LogByHost(fallback)
    root = logging.getLogger()
    root.handlers[:] = [logs]
    root.setLevel(logging.INFO)
    try:
        pack = Pack(load_members(a.spec), logs)
        for m in pack.members.values():
            pack.build(m)
    except BuildError as e:
        print(f"compose.pack: {e}", file=sys.stderr)
        return e.status
    except (OSError, ValueError, KeyError, LookupError) as e:
        print(f"compose.pack: {a.spec}: {dk.one_line(e)}", file=sys.stderr)
        return dk.EXIT_CONFIG
    try:
        asyncio.run(run(pack, a.control))
    except BuildError as e:
        print(f"compose.pack: {e}", file=sys.stderr)
        return e.status
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
