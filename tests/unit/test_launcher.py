"""The launcher's Procfile and generated Rasa configuration."""

from pathlib import Path

import yaml

from bot.launcher import process_env, read_procfile, standard_procs
from core.settings import load_settings


def test_procfile_names_every_process() -> None:
    procs = read_procfile()
    assert list(procs) == ["emulator", "actions", "rasa", "gateway", "worker", "scheduler"]
    # Nothing needs Rasa's HTTP API, and its token could only be passed on the command line.
    assert "--enable-api" not in procs["rasa"] and "--auth-token" not in procs["rasa"]


def test_emulator_only_in_sandbox_mode() -> None:
    assert [p.name for p in standard_procs(load_settings(env={}))][0] == "emulator"
    real = load_settings(env={"TELEGRAM_BOT_TOKEN": "1:x", "TELEGRAM_STAFF_CHAT_ID": "-100"})
    assert "emulator" not in [p.name for p in standard_procs(real)]


def test_rasa_endpoints_carry_the_action_secret(tmp_path: Path) -> None:
    settings = load_settings(env={"APP_DATA_DIR": str(tmp_path), "ACTIONS_PORT": "6055"})
    env = process_env(settings, tmp_path / "m.tar.gz", base={"ACTION_SERVER_TOKEN": "abc"})
    endpoints = yaml.safe_load(Path(env["RASA_ENDPOINTS"]).read_text())
    assert endpoints["action_endpoint"] == {"url": "http://127.0.0.1:6055/webhook",
                                            "token": "abc"}
    assert env["RASA_HOST"] == "127.0.0.1"
    generated = process_env(settings, None, base={})
    assert len(generated["ACTION_SERVER_TOKEN"]) >= 24  # a fresh secret when none is given


def test_rasa_keeps_conversations_in_an_sql_tracker_store(tmp_path: Path) -> None:
    settings = load_settings(env={"APP_DATA_DIR": str(tmp_path)})
    env = process_env(settings, None, base={"ACTION_SERVER_TOKEN": "abc"})
    endpoints = yaml.safe_load(Path(env["RASA_ENDPOINTS"]).read_text())
    assert endpoints["tracker_store"] == {"type": "SQL", "dialect": "sqlite",
                                          "db": str(tmp_path / "rasa" / "tracker.db")}
    assert "lock_store" not in endpoints


def test_postgres_tracker_store_and_redis_lock_store(tmp_path: Path) -> None:
    settings = load_settings(env={
        "APP_DATA_DIR": str(tmp_path),
        "DATABASE_URL": "postgresql+asyncpg://bob:s3cret@db.internal:5433/desk",
        "APP__RASA__REDIS_URL": "redis://:r3dis@cache:6380/2"})
    env = process_env(settings, None, base={"ACTION_SERVER_TOKEN": "abc"})
    text = Path(env["RASA_ENDPOINTS"]).read_text()
    assert "s3cret" not in text and "r3dis" not in text  # passwords only in the environment
    endpoints = yaml.safe_load(text)
    assert endpoints["tracker_store"] == {
        "type": "SQL", "dialect": "postgresql", "url": "db.internal", "port": 5433,
        "username": "bob", "password": "${RASA_TRACKER_DB_PASSWORD}", "db": "desk_rasa",
        "login_db": "desk"}
    assert env["RASA_TRACKER_DB_PASSWORD"] == "s3cret"
    assert endpoints["lock_store"] == {
        "type": "redis", "url": "cache", "port": 6380, "db": 2,
        "password": "${RASA_REDIS_PASSWORD}", "use_ssl": False, "key_prefix": "dealer_desk"}
    assert env["RASA_REDIS_PASSWORD"] == "r3dis"
