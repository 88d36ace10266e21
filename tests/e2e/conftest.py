"""The end-to-end system, started once per test session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from sandbox.harness import Harness, start_system, stop_system


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test here as e2e (each module sets the session loop scope itself)."""
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    """Emulator + action server + Rasa + gateway, on free loopback ports."""
    harness = await start_system(tmp_path_factory.mktemp("e2e"))
    try:
        yield harness
    finally:
        await stop_system(harness)
