"""The launcher's Procfile and generated Rasa configuration."""

from pathlib import Path

import yaml

from bot.launcher import process_env, read_procfile, standard_procs
from core.settings import load_settings


def test_procfile_names_every_process() -> None:
    procs = read_procfile()
    assert list(procs) == ["emulator", "actions", "rasa", "gateway"]
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
