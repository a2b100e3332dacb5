"""No function in the product longer than LIMIT lines without a reason written next to it.

A function (or method) counts from its ``def`` line to its last line, docstring and
comments included. One longer than LIMIT needs a comment ``# long: <reason>`` on the line
just above its ``def`` (or above its first decorator).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gmpls", "daemonkit", "node_agent", "pce", "qkd_proxy", "idq3p_emulator", "compose")
LIMIT = 80
_REASON = re.compile(r"^\s*# long: \S")


def _functions(
    tree: ast.AST, prefix: str = ""
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method with its dotted qualified name (``Class.method``,
    ``outer.inner``)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                yield name, node
            yield from _functions(node, f"{name}.")
        else:
            yield from _functions(node, prefix)


def _length(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    assert fn.end_lineno is not None
    return fn.end_lineno - fn.lineno + 1


def _has_reason(lines: list[str], fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    first = min([fn.lineno, *(d.lineno for d in fn.decorator_list)])
    return first >= 2 and bool(_REASON.match(lines[first - 2]))


def _measure() -> dict[str, tuple[int, bool]]:
    """``path:qualname`` -> (length, has a ``# long:`` reason) for every product function."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text()
            lines = text.splitlines()
            for qualname, fn in _functions(ast.parse(text, str(path))):
                key = f"{path.relative_to(ROOT).as_posix()}:{qualname}"
                out[key] = (_length(fn), _has_reason(lines, fn))
    return out


def test_no_function_is_long_without_a_reason() -> None:
    too_long = {
        f"{key} ({length} lines)"
        for key, (length, reason) in _measure().items()
        if length > LIMIT and not reason
    }
    assert not too_long, (
        f"longer than {LIMIT} lines, split them or write `# long: <reason>`: {sorted(too_long)}"
    )


def test_the_marker_is_seen() -> None:
    tree = ast.parse("x = 1\n\n# long: a table\n@dec\ndef f():\n    pass\n\ndef g():\n    pass\n")
    lines = ["x = 1", "", "# long: a table", "@dec", "def f():", "    pass", "", "def g():"]
    found = dict(_functions(tree))
    assert _has_reason(lines, found["f"]) and not _has_reason(lines, found["g"])
