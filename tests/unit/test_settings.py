"""Settings come from config.yml with environment overrides; mistakes are named."""

from pathlib import Path

import pytest

from core.settings import ConfigError, load_settings


def test_defaults_are_sandbox_on_loopback() -> None:
    s = load_settings(env={})
    assert s.sandbox_mode
    assert s.bot_api_base_url == "http://127.0.0.1:8081/bot"
    assert s.rasa.host == "127.0.0.1" and s.actions.host == "127.0.0.1"
    assert s.sandbox.host == "127.0.0.1"


def test_token_switches_to_telegram_and_custom_api_server() -> None:
    s = load_settings(env={"TELEGRAM_BOT_TOKEN": "123:abc", "TELEGRAM_STAFF_CHAT_ID": "-1001",
                           "TELEGRAM_API_BASE_URL": "http://localhost:9000/bot"})
    assert not s.sandbox_mode
    assert s.bot_token == "123:abc"
    assert s.bot_api_base_url == "http://localhost:9000/bot"


def test_generic_environment_override_is_typed() -> None:
    s = load_settings(env={"APP__RASA__TIMEOUT_SECONDS": "7.5", "APP__LINKING__CODE_LENGTH": "10"})
    assert s.rasa.timeout_seconds == 7.5
    assert s.linking.code_length == 10


def test_unknown_key_is_rejected_with_the_known_ones(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text("rasa:\n  prot: 5005\n")
    with pytest.raises(ConfigError, match="unknown key.*prot.*known keys"):
        load_settings(cfg, env={})


def test_webhook_mode_needs_a_url() -> None:
    with pytest.raises(ConfigError, match="webhook_url"):
        load_settings(env={"TELEGRAM_BOT_TOKEN": "1:a", "TELEGRAM_MODE": "webhook",
                           "TELEGRAM_STAFF_CHAT_ID": "-1001"})


def test_webhook_mode_refuses_to_start_without_its_secret() -> None:
    env = {"TELEGRAM_BOT_TOKEN": "1:a", "TELEGRAM_MODE": "webhook", "TELEGRAM_STAFF_CHAT_ID": "-1",
           "TELEGRAM_WEBHOOK_URL": "https://bot.example/telegram"}
    with pytest.raises(ConfigError, match="TELEGRAM_WEBHOOK_SECRET"):
        load_settings(env=env)
    settings = load_settings(env={**env, "TELEGRAM_WEBHOOK_SECRET": "s" * 32})
    assert settings.telegram.mode == "webhook"


def test_a_real_token_needs_a_staff_group() -> None:
    with pytest.raises(ConfigError, match="TELEGRAM_STAFF_CHAT_ID"):
        load_settings(env={"TELEGRAM_BOT_TOKEN": "1:a"})


def test_bad_values_are_named_with_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rasa\.port"):
        load_settings(env={"APP__RASA__PORT": "fifty"})
    cfg = tmp_path / "config.yml"
    cfg.write_text("secrets:\n  telegram_bot_token: x\n")
    with pytest.raises(ConfigError, match="environment"):
        load_settings(cfg, env={})


def test_import_section_and_yaml_values(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text("import:\n  demo_data_dir: elsewhere\nstock:\n  show_quantities: false\n")
    s = load_settings(cfg, env={"APP__STOCK__LOW_THRESHOLD": "7"})
    assert s.import_.demo_data_dir == "elsewhere"
    assert s.stock.show_quantities is False and s.stock.low_threshold == 7


def test_relative_sqlite_path_is_anchored_to_the_project() -> None:
    s = load_settings(env={})
    assert s.resolved_database_url().endswith("/var/app.db")
    assert s.resolved_database_url().startswith("sqlite+aiosqlite:////")
