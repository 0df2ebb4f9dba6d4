"""Fixtures and helpers shared by the test modules."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest


def require_tool(name: str) -> str:
    """Return the path of the command ``name``; skip the test when it is missing.

    In CI (``CI=true``) a missing tool fails the test instead: the comparison it guards must
    run there.
    """
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required when CI=true but is not installed")
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture(scope="session")
def tshark() -> str:
    """Return the path of tshark (see ``require_tool``)."""
    return require_tool("tshark")


@pytest.fixture(scope="session")
def fstrm_replay() -> str:
    """Return the path of fstrm_replay, Debian's fstrm-bin (see ``require_tool``)."""
    return require_tool("fstrm_replay")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The watch processes a test starts; any still running at the end are killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
