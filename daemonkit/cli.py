"""The daemons' telnet CLI, in FRR's style: a line protocol on TCP with a prompt
(``tn1# ``), one command per line, ``exit``/``quit`` to leave.

Commands live in a :class:`CommandTable` that any part of a daemon can register into
(OSPF, RSVP, the QE service, the PCE's TED ...), each with a ``json`` form: a trailing
``json`` word gives the handler's data as JSON instead of text::

    table.register("show ip ospf neighbor", handler, "OSPF neighbors", text=render_fn)

A handler receives the words after the command (``args``) and returns data (rendered by
``text`` for the plain form, ``json.dumps`` for the json form) or a string; it may be a
coroutine function. The longest registered command that prefixes the line wins, so a
command can take arguments (``show ip ospf database opaque-area``). A failing handler
answers ``% error: ...``; it never takes the CLI down. Telnet negotiation from the client
(IAC sequences) is stripped, never answered. The node agent and the PCE both serve it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from daemonkit.daemon import cancel

log = logging.getLogger("daemonkit.cli")

Handler = Callable[[list[str]], Any | Awaitable[Any]]
Renderer = Callable[[Any], str]


def strip_telnet(data: bytes) -> bytes:
    """Remove telnet IAC sequences (RFC 854) from ``data``."""
    out = bytearray()
    i = 0
    while i < len(data):
        b = data[i]
        if b != 255:
            out.append(b)
            i += 1
        elif i + 1 < len(data) and data[i + 1] in (251, 252, 253, 254):
            i += 3
        elif i + 1 < len(data) and data[i + 1] == 250:
            end = data.find(b"\xff\xf0", i)
            i = len(data) if end < 0 else end + 2
        elif i + 1 < len(data) and data[i + 1] == 255:
            out.append(255)
            i += 2
        else:
            i += 2
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Command:
    words: tuple[str, ...]
    handler: Handler
    help: str
    text: Renderer | None = None


class CommandTable:
    """Word-sequence -> handler. Registering the same words twice is an error.

    ``unknown`` starts the answer to a line no command prefixes (FRR's wording by default).
    """

    def __init__(self, *, unknown: str = "% Unknown command") -> None:
        self._cmds: dict[tuple[str, ...], Command] = {}
        self.unknown = unknown

    def register(
        self, words: str, handler: Handler, help: str, *, text: Renderer | None = None
    ) -> None:
        key = tuple(words.split())
        if key in self._cmds:
            raise RuntimeError(f"CLI command {words!r} registered twice")
        self._cmds[key] = Command(key, handler, help, text)

    def commands(self) -> list[Command]:
        return [self._cmds[k] for k in sorted(self._cmds)]

    def lookup(self, words: list[str]) -> tuple[Command, list[str]] | None:
        for n in range(len(words), 0, -1):
            cmd = self._cmds.get(tuple(words[:n]))
            if cmd is not None:
                return cmd, words[n:]
        return None

    def help_text(self) -> str:
        lines = [f"{' '.join(c.words) + ' [json]':<44} {c.help}" for c in self.commands()]
        lines += [f"{'help | ?':<44} this list", f"{'exit | quit':<44} close the session"]
        return "\n".join(lines)

    async def run(self, line: str) -> str | None:
        """The output for one command line; None means close the session."""
        words = line.split()
        if not words:
            return ""
        if words[0] in ("exit", "quit", "end"):
            return None
        if words[0] in ("help", "?"):
            return self.help_text()
        as_json = words[-1] == "json"
        if as_json:
            words = words[:-1]
        found = self.lookup(words)
        if found is None:
            return f"{self.unknown}: {line.strip()} (try 'help')"
        cmd, args = found
        try:
            result = cmd.handler(args)
            if inspect.isawaitable(result):
                result = await result
        except Exception as e:  # a failing command never takes the CLI down
            log.exception("cli command failed", extra={"event": "cli_error", "cmd": line})
            if as_json:
                return json.dumps({"error": str(e)})
            return f"% error: {e}"
        if as_json:
            return json.dumps(
                result if not isinstance(result, str) else {"output": result}, indent=2, default=str
            )
        if isinstance(result, str):
            return result
        if cmd.text is not None:
            return cmd.text(result)
        return json.dumps(result, indent=2, default=str)


class CliServer:
    """Serves a :class:`CommandTable` over TCP (telnet clients welcome)."""

    def __init__(self, table: CommandTable, hostname: str) -> None:
        self.table = table
        self.prompt = f"{hostname}# "
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._client, host, port, reuse_address=True)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await cancel(self._tasks)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            writer.write(self.prompt.encode())
            await writer.drain()
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                line = strip_telnet(raw).decode(errors="replace").strip()
                out = await self.table.run(line)
                if out is None:
                    break
                text = out + ("\n" if out and not out.endswith("\n") else "")
                writer.write(text.replace("\n", "\r\n").encode() + self.prompt.encode())
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
