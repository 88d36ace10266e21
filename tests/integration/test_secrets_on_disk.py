"""Secrets on disk: the launcher's data dir is private and its files are owner-only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from bot.launcher import Proc, Stack, process_env
from core.settings import load_settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_generated_files_database_and_logs_are_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    db = data / "app.db"
    db.write_text("")
    os.chmod(db, 0o644)  # left world-readable by an older version
    (data / "rasa").mkdir(mode=0o755)
    old = data / "rasa" / "endpoints.yml"
    old.write_text("stale")
    os.chmod(old, 0o644)
    settings = load_settings(env={"APP_DATA_DIR": str(data),
                                  "DATABASE_URL": f"sqlite+aiosqlite:///{db}"})
    env = process_env(settings, None, base={})
    assert mode(data) == 0o700 and mode(data / "rasa") == 0o700
    for name in ("RASA_ENDPOINTS", "RASA_CREDENTIALS", "SANDBOX_PERSONAS"):
        assert mode(Path(env[name])) == 0o600, name
    assert env["ACTION_SERVER_TOKEN"] in Path(env["RASA_ENDPOINTS"]).read_text()
    assert mode(db) == 0o600
    pepper = data / "secrets" / "link_code_pepper"
    assert mode(pepper) == 0o600 and mode(pepper.parent) == 0o700
    assert pepper.read_text().strip() == env["LINK_CODE_PEPPER"]
    assert len(env["IDENTITY_SIGNING_KEY"]) >= 32
    # The pepper survives restarts (codes live for days); the per-run secrets do not.
    again = process_env(settings, None, base={})
    assert again["LINK_CODE_PEPPER"] == env["LINK_CODE_PEPPER"]
    assert again["IDENTITY_SIGNING_KEY"] != env["IDENTITY_SIGNING_KEY"]


async def test_children_create_owner_only_files_and_logs(tmp_path: Path) -> None:
    made = tmp_path / "made-by-child"
    stack = Stack({"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, echo=False,
                  log_dir=tmp_path / "logs")
    try:
        await stack.start(Proc("child", f"touch {made}; echo ready; sleep 30",
                               ready_line="ready"), timeout=20)
    finally:
        await stack.stop(grace=2)
    assert mode(made) == 0o600
    assert mode(tmp_path / "logs") == 0o700
    assert mode(tmp_path / "logs" / "child.log") == 0o600
