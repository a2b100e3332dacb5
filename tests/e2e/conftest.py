"""Module fixtures for the end-to-end tests: the paper testbed in namespaces under our own
prefixes (``e2``, ``e2w``: never ``qk``), see :mod:`tests.support.e2elab`."""

from __future__ import annotations

import os
from collections.abc import Iterator

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


@pytest.fixture(scope="module")
def paper_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("network namespace tests need root")
    run = tmp_path_factory.mktemp("e2-run")
    old = private_index(run)
    try:
        lab = start_lab(PAPER, "e2", run)
        try:
            yield lab
        finally:
            stop_lab(lab)
    finally:
        restore_index(old)


@pytest.fixture(scope="module")
def wide_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The paper topology with 64 lambdas per TE link (prefix ``e2w``)."""
    if os.geteuid() != 0:
        pytest.skip("network namespace tests need root")
    run = tmp_path_factory.mktemp("e2w-run")
    old = private_index(run)
    try:
        lab = start_lab(wide_topology(run, 64), "e2w", run)
        try:
            yield lab
        finally:
            stop_lab(lab)
    finally:
        restore_index(old)
