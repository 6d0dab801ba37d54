"""Shared fixtures: `harness`, the real bot against the Bot API emulator (see tests/harness.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.harness import Harness, start_harness


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    world = await start_harness(tmp_path)
    try:
        yield world
    finally:
        await world.stop()
