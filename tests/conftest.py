"""Shared fixtures.

``testbed_factory`` brings a topology up in network namespaces under a prefix of the test's
choosing and always tears it down, also when the test fails::

    @pytest.mark.netns
    def test_something(testbed_factory):
        tb = testbed_factory("topologies/paper.yaml", prefix="xx")          # daemons started
        tb = testbed_factory("topologies/paper.yaml", prefix="xy", start_daemons=False)
        tb.exec("tn1", ["ip", "-br", "addr"], check=True)
        assert tb.ping("tn1", "tn5")
        print(tb.cli("tn1", "show ip ospf neighbor", via="client"))

Relative topology paths are taken from the repository root, so tests run from anywhere.
Use a prefix of your own (1-4 lowercase letters/digits) so that tests never clash with a
user's running ``qk`` testbed or with another area's tests. Anything left over from an
earlier crashed run with the same prefix is removed before bringing it up. The run
directory (logs, state.json) is under the test's ``tmp_path``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# No wall-clock deadline per example (Hypothesis' default is 200 ms): tests assert behaviour,
# speed figures belong in bench/, and on a machine shared with namespace testbeds one example
# of tests/pcep/test_pcep_fuzz.py took 265 ms and failed with DeadlineExceeded. Explicit
# @settings(...) inherit this profile's deadline.
settings.register_profile("qkdnet", deadline=None)
settings.load_profile("qkdnet")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def testbed_factory(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    if os.geteuid() != 0:
        pytest.skip("network namespace tests need root")
    from compose.netns import NetnsTestbed, teardown

    made: list[Any] = []

    def make(
        topology: str | os.PathLike[str],
        prefix: str,
        *,
        start_daemons: bool = True,
        run_dir: str | os.PathLike[str] | None = None,
        **kw: Any,
    ) -> NetnsTestbed:
        path = Path(topology)
        if not path.is_absolute() and not path.exists():
            path = ROOT / path
        teardown(prefix, progress=lambda _line: None)  # leftovers of a crashed earlier run
        tb = NetnsTestbed(path, run_dir or tmp_path / f"run-{prefix}", prefix=prefix, **kw)
        made.append(tb)
        tb.up(start_daemons=start_daemons)
        return tb

    try:
        yield make
    finally:
        errors = []
        for tb in reversed(made):
            try:
                tb.down()
            except Exception as e:  # keep tearing the others down
                errors.append(e)
        if errors:
            raise errors[0]
