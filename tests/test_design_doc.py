"""docs/design.md: its links resolve, links to it from anywhere in the repository resolve,
and the code points it states are the ones the code uses."""

from __future__ import annotations

import os
import re
from pathlib import Path

from gmpls import qe
from gmpls.ero import QeSubobject, lambda_label
from gmpls.pcep.constants import TlvType
from gmpls.rsvp.constants import ErrorCode, QeError
from pce.compute import NoPathReason

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "design.md"
TEXT = DOC.read_text()


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


ANCHORS = [_anchor(h) for h in re.findall(r"^#{2,4} (.+)$", TEXT, re.MULTILINE)]


def _rows(marker: str) -> list[list[str]]:
    """The body rows of the first table after ``marker`` (a heading or a table's header
    line), code blocks skipped, cells stripped of ``**`` and backquotes."""
    lines: list[str] = []
    fenced = False
    for line in TEXT.split(f"\n{marker}\n", 1)[1].splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    rule = next(i for i, line in enumerate(lines) if re.fullmatch(r"\|[-| ]+\|", line))
    return [
        [c.strip().strip("*`") for c in line.strip("|").split("|")] for line in lines[rule + 1 :]
    ]


def test_headings_are_unique() -> None:
    assert len(ANCHORS) == len(set(ANCHORS))


def test_links_inside_the_document_resolve() -> None:
    assert set(re.findall(r"\]\(#([^)]+)\)", TEXT)) - set(ANCHORS) == set()


def test_links_to_the_document_resolve() -> None:
    """Every link to a section of docs/design.md, in code, docs and topologies, names a
    heading of it."""
    broken = []
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in {"build", "run"}]
        for name in files:
            path = Path(top, name)
            if path.suffix not in {".py", ".md", ".yaml", ".yml"}:
                continue
            for anchor in re.findall(r"design\.md#([\w\-]+)", path.read_text(errors="replace")):
                if anchor not in ANCHORS:
                    broken.append(f"{path.relative_to(ROOT)}: #{anchor}")
    assert broken == []


def test_no_reference_to_files_outside_the_repository() -> None:
    assert not re.search(r"DESIGN|paper\.txt|\.\./shared", TEXT)
    docs = [
        ROOT / "README.md",
        *(ROOT / "docs").glob("*.md"),
        *(ROOT / "topologies").glob("*.yaml"),
    ]
    stale = [p.name for p in docs if re.search(r"DESIGN(\.md)?\s*§|DESIGN\.md", p.read_text())]
    assert stale == []


def test_metric_types_and_subobject_match_the_code() -> None:
    c = qe.CODEPOINTS
    rows = {int(r[0]): r[1] for r in _rows("### QE METRIC types")}
    assert rows.keys() == {
        c.metric_key_length,
        c.metric_enc_layer,
        c.metric_algorithm,
        c.metric_refresh_value,
        c.metric_refresh_type,
    }
    assert rows[c.metric_key_length].startswith("key length")
    assert rows[c.metric_refresh_type].startswith("key refresh type")
    assert f"Type {c.ero_subobject}" in TEXT and f"Type = {c.ero_subobject}" in TEXT
    assert f"Length = {QeSubobject.LENGTH}" in TEXT
    assert len(QeSubobject().encode()) == QeSubobject.LENGTH
    ri = {int(r[0]): r[1] for r in _rows("### Router Information capability bits")}
    assert ri[c.ri_qe_bit] == f"0x{c.ri_qe_mask:08x}" and ri[c.ri_te_bit] == f"0x{c.ri_te_mask:08x}"
    assert f"Channel 1 is 0x{lambda_label(1):08x}" in TEXT
    assert f"type {c.te_available_labels} (`gmpls.qe.CODEPOINTS.te_available_labels`" in TEXT


def test_registries_match_the_code() -> None:
    algorithms = _rows("| algorithm (`gmpls.qe.Algorithm`) | value |")
    assert [int(r[1]) for r in algorithms] == [a.value for a in qe.Algorithm]
    layers = _rows("| encryption layer | value |")
    assert [int(r[1]) for r in layers] == [v.value for v in qe.EncLayer]
    refresh = _rows("| refresh type | value | refresh value means |")
    assert [int(r[1]) for r in refresh] == [v.value for v in qe.RefreshType]
    errors = _rows("### RSVP-TE QE error codes")
    assert [r[0] for r in errors] == [f"{ErrorCode.QE_ERROR.value}/{e.value}" for e in QeError]
    reasons = _rows("### The NO-PATH-REASON TLV")
    assert [int(r[0]) for r in reasons] == [r.value for r in NoPathReason]
    assert f"type\n**{TlvType.NO_PATH_REASON.value}**" in TEXT
