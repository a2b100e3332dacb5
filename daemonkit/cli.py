"""The daemons' telnet CLI, in FRR's (vtysh's) style: a line protocol on TCP with a prompt
(``tn1# ``), one command per line, ``exit``/``quit`` to leave.

Commands live in a :class:`CommandTable` that any part of a daemon can register into
(OSPF, RSVP, the QE service, the PCE's TED ...), each with a ``json`` form: a trailing
``json`` word gives the handler's data as JSON instead of text::

    table.register("show ip ospf neighbor", handler, "OSPF neighbors", text=render_fn)

The grammar every daemon shares:

- the command words form a tree; a word may be abbreviated to any prefix that names one
  word at its place (``sh ip ospf nei``); a prefix naming several is
  ``% Ambiguous command: LINE (WORD: candidate, candidate)``; a word naming none is
  ``% Unknown command: LINE``; a line that stops inside the tree (``show ip``), or a
  command whose arguments are required and missing, is ``% Incomplete command: LINE``
  (with the command's syntax);
- words after a command are its arguments (``show qe-service 3``), described by the
  ``args`` syntax given at registration;
- ``?`` as the last word lists the next words with one-line help (``show ip ospf ?``);
  ``WORD?`` lists the words starting with ``WORD``; ``help`` lists every command with
  its syntax;
- ``terminal complete LINE`` answers the words that complete ``LINE``, one per line (a
  ``LINE`` ending in a space: the next words), for a client's tab completion;
- ``terminal status`` turns on the machine-readable result status for the session: every
  answer then ends with one line ``@status N`` (:data:`STATUS_PREFIX`), 0 when the command
  succeeded, 1 when it did not (unknown, ambiguous or incomplete command, bad arguments,
  a failing handler, or a handler's :class:`Failed` outcome such as a service that ended
  failed). ``compose.cliclient`` turns it on and ``qkdnet cli`` exits with it.

A handler receives the words after the command (``args``) and returns data (rendered by
``text`` for the plain form, ``json.dumps`` for the json form), a string, or a
:class:`Failed` wrapping either; it may be a coroutine function. A failing handler
answers ``% error: ...``; it never takes the CLI down. Telnet negotiation from the client
(IAC sequences) is stripped, never answered. Every daemon serves it.
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

from daemonkit import netns
from daemonkit.daemon import cancel
from gmpls.errors import RequestRefused

log = logging.getLogger("daemonkit.cli")

Handler = Callable[[list[str]], Any | Awaitable[Any]]
Renderer = Callable[[Any], str]

#: the last line of every answer once ``terminal status`` is on: ``@status 0`` or ``@status 1``
STATUS_PREFIX = "@status "
OK, FAILED = 0, 1

#: one-line help of the words that are not commands themselves (``show``, ``ip`` ...)
WORD_HELP = {
    "show": "Show running system information",
    "ip": "IP information",
    "ospf": "OSPF information",
    "database": "Link-state database",
    "mpls": "MPLS information",
    "rsvp": "RSVP-TE information",
    "qe-service": "QE services (quantum-encrypted LSPs)",
    "pce": "PCE information",
    "pcep": "PCEP information",
    "qkd": "QKD information",
}

#: the session's own words: (name, help), listed by ``?`` at the start of a line
SESSION_WORDS = (
    ("exit", "Close the session"),
    ("help", "List every command"),
    ("quit", "Close the session"),
    ("terminal", "Session settings: terminal status | terminal complete LINE"),
)


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
    #: the syntax of the arguments (``ID [timeout S]``); "" takes none
    args: str = ""

    @property
    def needs_args(self) -> bool:
        """The syntax starts with a required word (not ``[optional]``)."""
        return bool(self.args) and not self.args.startswith("[")

    @property
    def usage(self) -> str:
        return " ".join(self.words) + (f" {self.args}" if self.args else "")


@dataclass(frozen=True, slots=True)
class Failed:
    """A handler's outcome that did not succeed (a service that ended failed): shown like
    ``data``, with status 1 and ``reason``."""

    data: Any
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: its text and its status (0 ok, 1 failed); ``close`` ends the session."""

    text: str
    status: int = OK
    close: bool = False


@dataclass(slots=True)
class Parsed:
    """A line matched against the command tree."""

    #: the keywords matched so far, in full
    words: list[str]
    command: Command | None = None
    args: list[str] | None = None
    #: the error message when the line names no command
    error: str | None = None
    #: the line stops inside the tree (``show ip``): fine for ``?`` and completion
    incomplete: bool = False


class CommandTable:
    """Word-sequence -> handler. Registering the same words twice is an error."""

    def __init__(self) -> None:
        self._cmds: dict[tuple[str, ...], Command] = {}
        self._help: dict[tuple[str, ...], str] = {}

    def register(
        self,
        words: str,
        handler: Handler,
        help: str,
        *,
        text: Renderer | None = None,
        args: str = "",
    ) -> None:
        key = tuple(words.split())
        if key in self._cmds:
            raise RuntimeError(f"CLI command {words!r} registered twice")
        self._cmds[key] = Command(key, handler, help, text, args)

    def describe(self, words: str, help: str) -> None:
        """One-line help of a word that is not a command itself (``show pce``)."""
        self._help[tuple(words.split())] = help

    def commands(self) -> list[Command]:
        return [self._cmds[k] for k in sorted(self._cmds)]

    # --- the grammar ----------------------------------------------------------------------
    def children(self, prefix: tuple[str, ...]) -> list[str]:
        """The keywords that may follow ``prefix``, sorted."""
        n = len(prefix)
        return sorted({k[n] for k in self._cmds if len(k) > n and k[:n] == prefix})

    def _word_help(self, prefix: tuple[str, ...]) -> str:
        cmd = self._cmds.get(prefix)
        if cmd is not None:
            return cmd.help
        if prefix in self._help:
            return self._help[prefix]
        return WORD_HELP.get(prefix[-1], "") or ", ".join(self.children(prefix))

    def parse(self, words: list[str]) -> Parsed:
        """Match ``words`` (no trailing ``json``) against the tree, keywords abbreviated."""
        line = " ".join(words)
        p = Parsed([])
        for i, w in enumerate(words):
            here = tuple(p.words)
            kids = self.children(here)
            matched = [w] if w in kids else [k for k in kids if k.startswith(w)]
            if len(matched) == 1:
                p.words.append(matched[0])
                continue
            cmd = self._cmds.get(here)
            if cmd is not None:  # the rest are the command's arguments
                p.command, p.args = cmd, words[i:]
                return p
            if matched:
                p.error = f"% Ambiguous command: {line} ({w}: {', '.join(matched)})"
            else:
                p.error = f"% Unknown command: {line}"
            return p
        cmd = self._cmds.get(tuple(p.words))
        if cmd is None:
            p.error, p.incomplete = f"% Incomplete command: {line}", True
        else:
            p.command, p.args = cmd, []
        return p

    def lookup(self, words: list[str]) -> tuple[Command, list[str]] | None:
        p = self.parse(words)
        if p.command is None or p.args is None:
            return None
        return p.command, p.args

    def complete(self, line: str) -> list[str]:
        """The words completing ``line``: its last word's completions, or with a trailing
        space the next words (``json`` after a complete command)."""
        words = line.split()
        partial = "" if not words or line.endswith((" ", "\t")) else words.pop()
        if not words:
            names = self.children(()) + [w for w, _ in SESSION_WORDS]
            return sorted(n for n in set(names) if n.startswith(partial))
        p = self.parse(words)
        if p.error is not None and not p.incomplete:
            return []
        if p.command is not None and p.args:
            return ["json"] if "json".startswith(partial) and partial else []
        here = tuple(p.words)
        names = self.children(here)
        if p.command is not None:
            names.append("json")
        return [n for n in names if n.startswith(partial)]

    def context_help(self, line: str) -> Reply:
        """``?``: the next words of ``line`` (which ends in ``?``) with their help."""
        body = line.rstrip()[:-1]
        words = body.split()
        partial = "" if not words or body.endswith((" ", "\t")) else words.pop()
        if not words:
            rows = [(k, self._word_help((k,))) for k in self.children(())]
            rows += list(SESSION_WORDS)
            rows = sorted(r for r in rows if r[0].startswith(partial))
            return _help_rows(rows, body)
        p = self.parse(words)
        if p.error is not None and not p.incomplete:
            return Reply(p.error, FAILED)
        rows = []
        cmd = p.command
        if cmd is None or not p.args:
            here = tuple(p.words)
            rows = [(k, self._word_help((*here, k))) for k in self.children(here)]
        if cmd is not None:
            if cmd.args and not p.args:
                rows.append((cmd.args, cmd.help))
            if not cmd.needs_args or p.args:
                rows.append(("json", "JSON output"))
                rows.append(("<cr>", "" if cmd.args and not p.args else cmd.help))
        return _help_rows([r for r in rows if r[0].startswith(partial)], body)

    def help_text(self) -> str:
        lines = [f"{c.usage + ' [json]':<44} {c.help}" for c in self.commands()]
        lines += [f"{'help | ?':<44} this list", f"{'exit | quit':<44} close the session"]
        lines += [f"{'terminal status | complete LINE':<44} result status, completion"]
        return "\n".join(lines)

    # --- running a line -------------------------------------------------------------------
    async def run(self, line: str) -> str | None:
        """The output for one command line; None means close the session."""
        r = await self.execute(line)
        return None if r.close else r.text

    async def execute(self, line: str) -> Reply:
        """The :class:`Reply` to one command line."""
        stripped = line.strip()
        words = stripped.split()
        if not words:
            return Reply("")
        if words[0] in ("exit", "quit", "end") and len(words) == 1:
            return Reply("", close=True)
        if words == ["help"]:
            return Reply(self.help_text())
        if stripped.endswith("?"):
            return self.context_help(line)
        if terminal(words) == "complete":
            rest = line.lstrip().split(None, 2)[2] if len(words) > 2 else ""
            return Reply("\n".join(self.complete(rest)))
        if terminal(words) == "status":
            return Reply("")  # the server keeps the session's setting
        as_json = words[-1] == "json"
        if as_json:
            words = words[:-1]
        p = self.parse(words)
        if p.command is None or p.args is None:
            msg = p.error or f"% Unknown command: {stripped}"
            return Reply(json.dumps({"error": msg}) if as_json else msg, FAILED)
        cmd, args = p.command, p.args
        if cmd.needs_args and not args:
            msg = f"% Incomplete command: {stripped}\nusage: {cmd.usage}"
            return Reply(json.dumps({"error": msg}) if as_json else msg, FAILED)
        status = OK
        try:
            result = cmd.handler(args)
            if inspect.isawaitable(result):
                result = await result
        except Exception as e:  # a failing command never takes the CLI down
            if not isinstance(e, RequestRefused):  # a refusal is the caller's, not ours
                log.exception("cli command failed", extra={"event": "cli_error", "cmd": line})
            if as_json:
                return Reply(json.dumps({"error": str(e)}), FAILED)
            return Reply(f"% error: {e}", FAILED)
        if isinstance(result, Failed):
            status, result = FAILED, result.data
        if as_json:
            data = result if not isinstance(result, str) else {"output": result}
            return Reply(json.dumps(data, indent=2, default=str), status)
        if isinstance(result, str):
            return Reply(result, status)
        if cmd.text is not None:
            return Reply(cmd.text(result), status)
        return Reply(json.dumps(result, indent=2, default=str), status)


def terminal(words: list[str]) -> str | None:
    """``status`` or ``complete`` for a ``terminal ...`` line (abbreviated as
    ``ter st``), else None."""
    if len(words) < 2 or len(words[0]) < 3 or not "terminal".startswith(words[0]):
        return None
    if "status".startswith(words[1]) and len(words) == 2:
        return "status"
    return "complete" if "complete".startswith(words[1]) else None


def _help_rows(rows: list[tuple[str, str]], line: str) -> Reply:
    if not rows:
        return Reply(f"% Unknown command: {line.strip()}", FAILED)
    width = max(len(k) for k, _ in rows)
    return Reply("\n".join(f"  {k:<{width}}  {h}".rstrip() for k, h in rows))


def register_running_config(table: CommandTable, lines: Callable[[], list[str]]) -> None:
    """``show running-config``: the daemon's effective configuration as config lines (its
    json form: ``{"lines": [...]}``)."""
    table.register(
        "show running-config",
        lambda args: {"lines": lines()},
        "the effective configuration, as configuration lines",
        text=lambda d: "\n".join(d["lines"]),
    )


class CliServer:
    """Serves a :class:`CommandTable` over TCP (telnet clients welcome)."""

    def __init__(self, table: CommandTable, hostname: str) -> None:
        self.table = table
        self.prompt = f"{hostname}# "
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._client, sock=netns.listening(host, port))
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
        with_status = False
        try:
            writer.write(self.prompt.encode())
            await writer.drain()
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                line = strip_telnet(raw).decode(errors="replace").rstrip("\r\n")
                with_status = with_status or terminal(line.split()) == "status"
                r = await self.table.execute(line)
                if r.close:
                    break
                out = r.text + ("\n" if r.text and not r.text.endswith("\n") else "")
                if with_status:
                    out += f"{STATUS_PREFIX}{r.status}\n"
                writer.write(out.replace("\n", "\r\n").encode() + self.prompt.encode())
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
