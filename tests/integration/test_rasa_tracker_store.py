"""The tracker store the launcher writes into endpoints.yml works with Rasa's own code
(its venv, SQLAlchemy 1.4): a conversation saved is read back, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from bot.launcher import process_env
from core.settings import PROJECT_ROOT, load_settings
from tests.conftest import postgres_url

RASA_PYTHON = PROJECT_ROOT / ".venv-rasa" / "bin" / "python"
CHECK = """
import asyncio, sys
from rasa.core.tracker_store import TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import read_endpoint_config

async def main():
    store = TrackerStore.create(read_endpoint_config(sys.argv[1], "tracker_store"),
                                Domain.empty())
    tracker = DialogueStateTracker(sys.argv[2], [])
    tracker.update(UserUttered("hi"))
    await store.save(tracker)
    print(type(store).__name__, len((await store.retrieve(sys.argv[2])).events))

asyncio.run(main())
"""


def _backends() -> list:
    return ["sqlite"] + (["postgresql"] if postgres_url() else [])


@pytest.mark.skipif(not RASA_PYTHON.exists(), reason=".venv-rasa is not installed")
@pytest.mark.parametrize("backend", _backends())
def test_rasa_saves_and_reads_back_a_conversation(backend: str, tmp_path: Path) -> None:
    env = {"APP_DATA_DIR": str(tmp_path)}
    if backend == "postgresql":
        env["DATABASE_URL"] = str(postgres_url())
    generated = process_env(load_settings(env=env), None, base={"ACTION_SERVER_TOKEN": "x"})
    sender = f"check-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [str(RASA_PYTHON), "-c", CHECK, generated["RASA_ENDPOINTS"], sender],
        capture_output=True, text=True, timeout=300, env={**generated, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["SQLTrackerStore", "1"], result.stdout
    if backend == "sqlite":
        assert (tmp_path / "rasa" / "tracker.db").exists()
