"""The commands of README.md and docs/*.md, as tests (conventions: docs/contributing.md).

``parse(text, name)`` finds every ```` ```console ```` block of a Markdown file with the
``<!-- docs-test: ... -->`` directives in front of it, and its commands (``$ `` lines, with
`` \\`` continuations), each with the exit status it must end with (``# exit N``) and the
output lines the doc shows under it. ``problems`` lists what breaks the conventions
(a console block without a testbed, a ```` ```sh ```` fence, a ``$ `` line outside a
console block). ``missing_output(shown, printed)`` says which shown line was not found, in
order; ``run_command`` runs one command as a user would from the repository root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
TIMEOUT = 300.0

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:\s*(.*?)\s*-->\s*$")
_EXIT = re.compile(r"(?:^|\s)#\s*exit\s+(\d+)\b")
_SHELL_FENCES = frozenset({"sh", "bash", "shell", "zsh", "shell-session", "shellsession"})
# fences whose text may quote console blocks (this file's own docs/contributing.md does)
_QUOTING_FENCES = frozenset({"markdown", "md"})


@dataclass
class Command:
    line: int  # 1-based line of its `$ `
    text: str  # as run, continuations joined with newlines
    exit: int = 0
    output: list[str] = field(default_factory=list)


@dataclass
class Block:
    path: str
    line: int  # 1-based line of the opening fence
    testbed: str | None = None  # paper, mesh6, ..., none, netns, docker
    skip: str | None = None  # the reason
    commands: list[Command] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass
class Parsed:
    blocks: list[Block]
    problems: list[str]


def parse(text: str, name: str) -> Parsed:
    """Every console block of one Markdown file, and what breaks the conventions."""
    blocks: list[Block] = []
    problems: list[str] = []
    pending: list[tuple[int, str]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            d = _DIRECTIVE.match(lines[i])
            if d:
                pending.append((i + 1, d.group(1)))
            elif lines[i].strip() and pending:
                problems.append(f"{name}:{pending[0][0]}: docs-test directive not before a block")
                pending = []
            i += 1
            continue
        fence, info = m.group(1), m.group(2).lower()
        start = i + 1
        body: list[str] = []
        i += 1
        while i < len(lines):
            c = re.match(r"^ {0,3}(`{3,}|~{3,})\s*$", lines[i])
            if c and c.group(1)[0] == fence[0] and len(c.group(1)) >= len(fence):
                break
            body.append(lines[i])
            i += 1
        i += 1  # past the closing fence (or the end of an unclosed one)
        directives, pending = pending, []
        if info == "console":
            blocks.append(_console_block(name, start, body, directives, problems))
            continue
        if directives:
            problems.append(f"{name}:{start}: docs-test directive before a {info or 'plain'} block")
        if info in _SHELL_FENCES:
            problems.append(f"{name}:{start}: ```{info} block: commands go in ```console blocks")
        elif info not in _QUOTING_FENCES:
            for k, line in enumerate(body):
                if line.startswith("$ "):
                    problems.append(f"{name}:{start + 1 + k}: `$ ` line outside a console block")
                    break
    if pending:
        problems.append(f"{name}:{pending[0][0]}: docs-test directive not before a block")
    return Parsed(blocks, problems)


def _console_block(
    name: str, start: int, body: list[str], directives: list[tuple[int, str]], problems: list[str]
) -> Block:
    block = Block(name, start)
    for line, d in directives:
        word, _, rest = d.partition(" ")
        rest = rest.strip()
        if word == "testbed" and re.fullmatch(r"[A-Za-z0-9_.-]+", rest):
            block.testbed = rest
        elif word == "skip" and rest:
            block.skip = rest
        else:
            problems.append(f"{name}:{line}: unknown docs-test directive {d!r}")
    if block.testbed is None and block.skip is None:
        problems.append(f"{name}:{start}: console block without <!-- docs-test: testbed ... -->")
    k = 0
    while k < len(body):
        line = body[k]
        if line.startswith("$ "):
            first = start + 1 + k
            parts = [line[2:]]
            while parts[-1].endswith("\\") and k + 1 < len(body):
                k += 1
                parts.append(body[k])
            text = "\n".join(parts)
            e = _EXIT.search(parts[-1])
            block.commands.append(Command(first, text, int(e.group(1)) if e else 0))
        elif block.commands:
            block.commands[-1].output.append(line)
        elif line.strip():
            problems.append(f"{name}:{start + 1 + k}: output before any `$ ` command")
        k += 1
    if not block.commands and block.skip is None:
        problems.append(f"{name}:{start}: console block without a `$ ` command")
    return block


def _pattern(shown: str) -> re.Pattern[str] | None:
    words = " ".join(shown.split())
    if words in ("", "..."):
        return None
    parts = re.split(r"\s*\.\.\.\s*", words)
    return re.compile(".*".join(re.escape(p) for p in parts))


def missing_output(shown: list[str], printed: str) -> str | None:
    """The first shown line not found in ``printed`` (in order), or None when all are."""
    got = [" ".join(line.split()) for line in printed.splitlines()]
    at = 0
    for line in shown:
        pat = _pattern(line)
        if pat is None:
            continue
        while at < len(got) and not pat.fullmatch(got[at]):
            at += 1
        if at == len(got):
            return line
        at += 1
    return None


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md, then docs/*.md in alphabetical order: the order the commands run in."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def all_blocks(root: Path = ROOT) -> Parsed:
    blocks: list[Block] = []
    problems: list[str] = []
    for f in doc_files(root):
        p = parse(f.read_text(encoding="utf-8"), str(f.relative_to(root)))
        blocks += p.blocks
        problems += p.problems
    return Parsed(blocks, problems)


_SHIM_DIR: str | None = None


def command_env(root: Path = ROOT) -> dict[str, str]:
    """The environment a doc command runs in: .venv/bin first on PATH, a `sudo` that
    runs the rest of its line when the machine has none (we are root already), and a
    HOME of its own, so that what the docs install for a user (the Wireshark plugin, the
    CLI history) never lands in the home of whoever runs the tests."""
    global _SHIM_DIR
    path = [str(root / ".venv" / "bin")]
    if _SHIM_DIR is None:
        _SHIM_DIR = tempfile.mkdtemp(prefix="docs-env-")
        Path(_SHIM_DIR, "home").mkdir()
    if shutil.which("sudo") is None:
        if not Path(_SHIM_DIR, "sudo").exists():
            shim = Path(_SHIM_DIR, "sudo")
            shim.write_text('#!/bin/sh\nwhile [ "${1#-}" != "$1" ]; do shift; done\nexec "$@"\n')
            shim.chmod(0o755)
        path.append(_SHIM_DIR)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([*path, env.get("PATH", "/usr/bin:/bin")])
    env.pop("VIRTUAL_ENV", None)
    env["HOME"] = str(Path(_SHIM_DIR, "home"))
    return env


@dataclass
class Ran:
    status: int
    output: str


def run_command(cmd: Command, root: Path = ROOT, timeout: float = TIMEOUT) -> Ran:
    """One command with bash from the repository root, stdout and stderr together."""
    t0 = time.monotonic()
    try:
        p = subprocess.run(
            ["bash", "-c", cmd.text],
            cwd=root,
            env=command_env(root),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as e:
        out = e.output.decode(errors="replace") if isinstance(e.output, bytes) else ""
        ran = Ran(-1, out + f"\n[docs-test: timed out after {timeout:.0f} s]")
    else:
        ran = Ran(p.returncode, p.stdout.decode(errors="replace"))
    _log(cmd, ran, time.monotonic() - t0)
    return ran


def _log(cmd: Command, ran: Ran, seconds: float) -> None:
    """With DOCS_TEST_LOG=FILE, every command, its time, status and output go there."""
    path = os.environ.get("DOCS_TEST_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"$ {cmd.text}\n[exit {ran.status}, {seconds:.1f} s]\n{ran.output}\n")


def check_block(block: Block, root: Path = ROOT) -> list[str]:
    """Run a block's commands in order; one line per command that failed (empty: all good).
    A command whose exit status is wrong stops the block: the later ones depend on it."""
    failures: list[str] = []
    for cmd in block.commands:
        ran = run_command(cmd, root)
        where = f"{block.path}:{cmd.line}: $ {cmd.text}"
        if ran.status != cmd.exit:
            tail = "\n    ".join(ran.output.rstrip().splitlines()[-15:])
            failures.append(f"{where}\n  exit {ran.status}, want {cmd.exit}; output:\n    {tail}")
            break
        lost = missing_output(cmd.output, ran.output)
        if lost is not None:
            tail = "\n    ".join(ran.output.rstrip().splitlines()[-25:])
            failures.append(f"{where}\n  no line matches {lost!r}; output:\n    {tail}")
    return failures
