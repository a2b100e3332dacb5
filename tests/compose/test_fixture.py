"""The shared ``testbed_factory`` fixture (tests/conftest.py) as other areas use it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from compose import nsutil
from compose.netns import leftovers

pytestmark = pytest.mark.netns


def test_factory_brings_up_with_the_given_prefix(testbed_factory: Callable[..., Any]) -> None:
    tb = testbed_factory("topologies/paper.yaml", prefix="ct8", start_daemons=False)
    assert tb.prefix == "ct8" and tb.topology.prefix == "ct8"
    assert tb.topo_file.read_text().count("prefix: ct8") == 1  # daemons read this copy
    assert "ct8-tn1" in nsutil.list_netns()
    assert tb.ping("tn1", "tn5")


def test_factory_tore_the_previous_one_down() -> None:
    assert leftovers("ct8") == []
