"""The PCE's telnet CLI: a line protocol on TCP with a prompt (``pce# ``).

Commands (each with an optional trailing ``json`` for machine-readable output)::

    show ted [json]              TE nodes (TE/QE capability) and links
    show pcep sessions [json]    PCEP sessions: peer, state, timers, counters
    show pce statistics [json]   requests, replies, no-paths by reason, compute time
    help | ?                     this list
    exit | quit                  close the connection

Telnet option negotiation from the client is stripped, never answered. A command table
maps word sequences to handlers, so a prefix that is not a command gets a clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("pce.cli")

Handler = Callable[[bool], str]


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
        else:
            i += 2
    return bytes(out)


class Cli:
    def __init__(self, prompt: str, commands: dict[str, tuple[Handler, str]]) -> None:
        self.prompt = prompt
        self.commands = commands
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def run(self, line: str) -> str | None:
        """The output for one command line; None means close the connection."""
        words = line.split()
        if not words:
            return ""
        if words[0] in ("exit", "quit"):
            return None
        if words[0] in ("help", "?"):
            return "\n".join(f"{cmd:<28} {desc}" for cmd, (_, desc) in self.commands.items())
        as_json = words[-1] == "json"
        if as_json:
            words = words[:-1]
        key = " ".join(words)
        entry = self.commands.get(key)
        if entry is None:
            return f"% unknown command: {line.strip()} (try 'help')"
        try:
            return entry[0](as_json)
        except Exception as e:  # a failing command never takes the CLI down
            log.exception("cli command failed", extra={"event": "cli_error", "cmd": key})
            return f"% error: {e}"

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._client, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._server is not None:
            await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            writer.write(self.prompt.encode())
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                line = strip_telnet(raw).decode(errors="replace").strip()
                out = self.run(line)
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


def render(data: Any, as_json: bool, text: Callable[[Any], str]) -> str:
    return json.dumps(data, indent=2, sort_keys=False) if as_json else text(data)
