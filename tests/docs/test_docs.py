"""Every command of README.md and docs/*.md, run as written (conventions: docs/contributing.md).

One test per console block, in the order the docs give them: README.md, then docs/ in
alphabetical order. Blocks needing no testbed run in the fast tier; the others are marked
``netns`` (run them under the testbed lock) or ``docker``. The blocks of one testbed share
one bring-up, across all the files: ``SharedBeds`` brings a topology up before a block that
needs it, takes it down before a block that brings it up itself (``qkdnet up`` or ``qkdnet
demo`` of it first), and takes it down after a block that failed (its state is unknown), so
one broken doc does not fail all the others. Blocks that bring their testbed up and down
themselves run first in their testbed's group.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.docblocks import ROOT, Block, Command, all_blocks, check_block, run_command

PARSED = all_blocks()
SPECIAL = ("none", "netns", "docker")


def test_the_docs_follow_the_conventions() -> None:
    assert PARSED.problems == [], "\n".join(PARSED.problems)


def _topology(name: str) -> Path:
    return ROOT / "topologies" / f"{name}.yaml"


def _own_up(block: Block, name: str) -> bool:
    """The block brings topologies/NAME.yaml up itself (`qkdnet up` or `qkdnet demo`)."""
    first = block.commands[0].text if block.commands else ""
    return bool(re.search(rf"qkdnet (up|demo)\s+topologies/{re.escape(name)}\.yaml\b", first))


def _self_contained(block: Block) -> bool:
    name = block.testbed or ""
    return _own_up(block, name) and bool(re.search(r"qkdnet down\b", block.commands[-1].text))


def _order(block: Block) -> tuple[int, int]:
    """netns blocks (their own testbeds) first, then one group per shared testbed; in a
    group, the blocks that bring it up and take it down themselves first, so that the
    others share one bring-up."""
    if block.testbed in SPECIAL or block.testbed is None:
        return (0, 0)
    seen = [b.testbed for b in PARSED.blocks if b.testbed not in SPECIAL and b.skip is None]
    return (1 + seen.index(block.testbed), 0 if _self_contained(block) else 1)


def _params() -> list[object]:
    out = []
    for block in sorted(PARSED.blocks, key=_order):
        marks: list[pytest.MarkDecorator] = []
        if block.skip is not None:
            marks.append(pytest.mark.skip(reason=f"{block.id}: {block.skip}"))
        elif block.testbed == "docker":
            marks.append(pytest.mark.docker)
        elif block.testbed != "none":
            marks.append(pytest.mark.netns)
        out.append(pytest.param(block, id=block.id, marks=marks))
    return out


class SharedBeds:
    """The shared testbeds of the docs (topologies/NAME.yaml, default prefixes)."""

    def __init__(self) -> None:
        self.touched: set[str] = set()

    @staticmethod
    def prefix(name: str) -> str:
        return str(yaml.safe_load(_topology(name).read_text())["prefix"])

    def is_up(self, name: str) -> bool:
        from compose.state import indexed, load_state

        path = indexed().get(self.prefix(name))
        state = load_state(path) if path is not None else None
        return state is not None and state.status == "up"

    def _run(self, words: str) -> None:
        ran = run_command(Command(0, f"qkdnet {words}"))
        assert ran.status == 0, f"qkdnet {words}: exit {ran.status}\n{ran.output[-3000:]}"

    def up(self, name: str) -> None:
        self.touched.add(name)
        self._run(f"up topologies/{name}.yaml --wait")

    def down(self, name: str) -> None:
        self._run(f"down topologies/{name}.yaml")

    def prepare(self, block: Block) -> None:
        wanted = block.testbed if block.testbed not in SPECIAL else None
        for name in list(self.touched) + [b for b in (wanted,) if b]:
            if name == wanted or not self.is_up(name):
                continue
            self.down(name)  # one testbed at a time: `qkdnet cli` wants the only one up
        if wanted is None:
            return
        own_up = _own_up(block, wanted)
        self.touched.add(wanted)
        if own_up and self.is_up(wanted):
            self.down(wanted)
        elif not own_up and not self.is_up(wanted):
            self.up(wanted)

    def after_failure(self, block: Block) -> None:
        if block.testbed not in SPECIAL and block.testbed is not None:
            self.down(block.testbed)

    def close(self) -> None:
        for name in sorted(self.touched):
            if self.is_up(name):
                self.down(name)


@pytest.fixture(scope="module")
def testbeds() -> Iterator[SharedBeds]:
    beds = SharedBeds()
    try:
        yield beds
    finally:
        beds.close()


@pytest.mark.parametrize("block", _params())
def test_doc_block(block: Block, request: pytest.FixtureRequest) -> None:
    if block.testbed != "none" and os.geteuid() != 0:
        pytest.skip("the docs' testbed commands need root")
    beds: SharedBeds | None = None
    if block.testbed not in ("none", "docker"):
        beds = request.getfixturevalue("testbeds")
        beds.prepare(block)
    failures = check_block(block)
    if failures and beds is not None:
        beds.after_failure(block)
    assert not failures, "\n".join(failures)
