"""Coordination fixtures (helpers live in coordination_harness.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from coordination_harness import Harness, running


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'coordination.db'}"


@pytest.fixture
async def harness(sqlite_url: str) -> AsyncIterator[Harness]:
    async with running(sqlite_url) as h:
        yield h
