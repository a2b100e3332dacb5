"""Module fixtures for the end-to-end tests: the paper testbed in namespaces under our own
prefixes (``e2``, ``e2w``: never ``qk``), see :mod:`tests.support.e2elab`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.e2elab import (
    PAPER,
    Lab,
    private_index,
    restore_index,
    start_lab,
    stop_lab,
    wide_topology,
)


def _lab(
    tmp_path_factory: pytest.TempPathFactory, prefix: str, topology: Callable[[Path], Path]
) -> Iterator[Lab]:
    """A lab of ``topology(run_dir)`` under ``prefix``, with an index of its own."""
    if os.geteuid() != 0:
        pytest.skip("network namespace tests need root")
    run = tmp_path_factory.mktemp(f"{prefix}-run")
    old = private_index(run)
    try:
        lab = start_lab(topology(run), prefix, run)
        try:
            yield lab
        finally:
            stop_lab(lab)
    finally:
        restore_index(old)


@pytest.fixture(scope="module")
def paper_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from _lab(tmp_path_factory, "e2", lambda _run: PAPER)


@pytest.fixture(scope="module")
def wide_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The paper topology with 64 lambdas per TE link (prefix ``e2w``)."""
    yield from _lab(tmp_path_factory, "e2w", lambda run: wide_topology(run, 64))
