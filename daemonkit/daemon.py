"""The daemon skeleton: what ``python -m node_agent``, ``pce``, ``qkd_proxy`` and
``idq3p_emulator`` share.

Every daemon takes the same flags, plus its own (``add_arguments``)::

    --topology FILE   the topology file (docs/topology.md)
    --host NAME       this daemon's host in it, of the daemon's kind
    --log-file FILE   the JSON-lines log (default: stderr)
    --state-dir DIR   where the daemon may leave state (the proxy and the emulator write
                      their counters there when they stop)
    --debug           log DEBUG records too

:func:`main` parses them, loads the topology, checks the host's kind, sets up logging
(:func:`gmpls.logfmt.setup_logging`) and builds the daemon (``build``). Anything wrong
until then — a bad flag, a topology that does not load, an unknown host, a host of
another kind, a value the daemon rejects (:class:`ConfigError`, ``ValueError``,
``LookupError``, ``OSError``) — is one line on stderr and exit status 2, never a
traceback. Then the daemon starts, runs until SIGTERM or SIGINT, stops and the process
exits 0. A daemon that cannot start (a socket it cannot open ...) is stopped, the cause
is logged and said in one line on stderr, exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Protocol

from gmpls.logfmt import setup_logging
from gmpls.topology import Topology, TopologyError, load

log = logging.getLogger("daemonkit.daemon")

#: exit status of a bad topology, host, flag or config
EXIT_CONFIG = 2
#: exit status of a daemon that could not start
EXIT_START = 1
#: the least a secret file (``--seed-file``, ``--sync-key-file``) must hold, in bytes
MIN_SECRET = 16


class ConfigError(Exception):
    """The daemon cannot be built from its flags and topology (the message says why)."""


class Daemon(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class StartError(Exception):
    """``Daemon.start`` failed; the cause is chained."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a usage error in one line (``PROG: error: ...``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {message}\n")


def one_line(e: BaseException) -> str:
    """``e`` as one line: the first problem of a :class:`TopologyError` (with how many
    more there are), a ``KeyError``'s message without its quotes."""
    if isinstance(e, TopologyError) and len(e.problems) > 1:
        more = len(e.problems) - 1
        return f"{e.problems[0]} (and {more} more problem{'s' if more > 1 else ''})"
    msg = e.args[0] if isinstance(e, KeyError) and e.args else e
    lines = str(msg).splitlines()
    return lines[0] if lines else type(e).__name__


def read_secret(path: Path) -> bytes:
    """The key material in a secret file (what ``qkdnet up`` writes, mode 0600): its raw
    bytes, at least :data:`MIN_SECRET` of them (``ValueError`` otherwise; ``OSError`` when
    it cannot be read). The bytes are never logged; errors name the file only."""
    data = path.read_bytes()
    if len(data) < MIN_SECRET:
        raise ValueError(f"{path}: holds {len(data)} bytes, a secret needs at least {MIN_SECRET}")
    return data


def command_parser(name: str, description: str | None = None) -> ArgumentParser:
    """The parser of ``python -m NAME``, a daemon or a command-line client: the
    ``description`` (its module's doc) as written, a usage error in one line."""
    return ArgumentParser(
        prog=f"python -m {name}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def parser(name: str, description: str | None = None) -> ArgumentParser:
    """The daemon's parser (:func:`command_parser`) with the common flags."""
    p = command_parser(name, description)
    p.add_argument("--topology", required=True, type=Path, help="the topology file")
    p.add_argument("--host", required=True, help="this daemon's host in the topology")
    p.add_argument("--log-file", help="JSON-lines log (default: stderr)")
    p.add_argument("--state-dir", type=Path, help="where the daemon may leave state")
    p.add_argument("--debug", action="store_true", help="log DEBUG records too")
    return p


@dataclass(frozen=True)
class Spec:
    """What ``python -m NAME`` runs: the daemon ``name`` (its package) for hosts of
    ``kind``, built by ``build`` from its parsed flags and the topology. Each daemon's
    ``__main__`` has one (``SPEC``); ``qkdnet up --pack N`` builds many from them in one
    process (:mod:`compose.pack`)."""

    name: str
    kind: str
    build: Callable[[argparse.Namespace, Topology], Daemon]
    description: str | None = None
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None

    def parse(self, argv: Sequence[str]) -> argparse.Namespace:
        """The flags (a usage error exits with status 2, as argparse does)."""
        p = parser(self.name, self.description)
        if self.add_arguments is not None:
            self.add_arguments(p)
        return p.parse_args(list(argv))

    def configure(
        self, a: argparse.Namespace, *, logging_to_file: bool = True
    ) -> tuple[Topology, Daemon]:
        """Load the topology, check the host's kind, set up logging (unless the caller
        does it) and build the daemon; :class:`ConfigError`, ``ValueError``,
        ``LookupError`` or ``OSError`` when it cannot be built."""
        topo = load(a.topology)
        host = topo.host(a.host)
        if host.kind != self.kind:
            raise ConfigError(f"host {a.host} is of kind {host.kind}, not {self.kind}")
        if logging_to_file:
            setup_logging(a.log_file, logging.DEBUG if a.debug else logging.INFO)
        return topo, self.build(a, topo)

    def main(self, argv: Sequence[str] | None = None) -> int:
        """Run the daemon until SIGTERM or SIGINT; the exit status."""
        a = self.parse(sys.argv[1:] if argv is None else argv)
        try:
            _, daemon = self.configure(a)
        except CONFIG_ERRORS as e:
            print(f"{self.name}: {one_line(e)}", file=sys.stderr)
            return EXIT_CONFIG
        try:
            asyncio.run(run(daemon, a.host))
        except StartError as e:
            cause = e.__cause__ or e
            log.error(
                "cannot start: %s",
                cause,
                extra={"host": a.host, "event": "start_failed", "error": f"{cause!r}"},
            )
            print(f"{self.name}: cannot start: {one_line(cause)}", file=sys.stderr)
            return EXIT_START
        return 0


#: what :meth:`Spec.configure` raises for a daemon that cannot be built
CONFIG_ERRORS = (ConfigError, ValueError, LookupError, OSError)


def main(
    name: str,
    kind: str,
    build: Callable[[argparse.Namespace, Topology], Daemon],
    argv: Sequence[str] | None = None,
    *,
    description: str | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """Run the daemon ``name`` (its package) for a host of ``kind``; the exit status."""
    return Spec(name, kind, build, description, add_arguments).main(argv)


async def run(daemon: Daemon, host: str) -> None:
    """Start ``daemon``, wait for SIGTERM or SIGINT, stop it. A failing start stops what
    started and raises :class:`StartError`."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await daemon.start()
    except Exception as e:
        with contextlib.suppress(Exception):
            await daemon.stop()
        raise StartError(str(e)) from e
    log.info("running", extra={"host": host, "event": "start"})
    try:
        await stop.wait()
    finally:
        log.info("stopping", extra={"host": host, "event": "stop"})
        await daemon.stop()


def stopped(
    logger: logging.Logger, name: str, counters: Mapping[str, int], state_dir: Path | None
) -> None:
    """What a daemon with counters does when it stops: log them, and with ``--state-dir``
    leave them in ``STATE_DIR/NAME.counters.json``."""
    logger.info("stopped", extra={"host": name, **counters})
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / f"{name}.counters.json").write_text(json.dumps(counters))


async def cancel(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and wait until each has ended, whatever it raised (what a server's
    or a client's ``stop`` does with the tasks it started)."""
    tasks = list(tasks)
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
