"""One settings object, loaded from config.yml plus environment overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Short environment names for the settings people change most often.
ENV_ALIASES = {
    "DATABASE_URL": ("database", "url"),
    "TELEGRAM_API_BASE_URL": ("telegram", "api_base_url"),
    "TELEGRAM_FILE_BASE_URL": ("telegram", "file_base_url"),
    "TELEGRAM_MODE": ("telegram", "mode"),
    "TELEGRAM_WEBHOOK_URL": ("telegram", "webhook_url"),
    "TELEGRAM_STAFF_CHAT_ID": ("telegram", "staff_chat_id"),
    "RASA_PORT": ("rasa", "port"),
    "ACTIONS_PORT": ("actions", "port"),
    "SANDBOX_PORT": ("sandbox", "port"),
    "APP_DATA_DIR": ("app", "data_dir"),
}


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the message says how to fix it."""


@dataclass(frozen=True)
class AppSection:
    timezone: str = "Asia/Shanghai"
    default_locale: str = "zh-Hans"
    data_dir: str = "var"
    traditional_convention: str = "tw"


@dataclass(frozen=True)
class DatabaseSection:
    url: str = "sqlite+aiosqlite:///var/app.db"
    echo: bool = False


@dataclass(frozen=True)
class TelegramSection:
    api_base_url: str = "https://api.telegram.org/bot"
    file_base_url: str = "https://api.telegram.org/file/bot"
    mode: str = "polling"
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    webhook_url: str = ""
    staff_chat_id: int | None = None
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 10.0


@dataclass(frozen=True)
class RasaSection:
    host: str = "127.0.0.1"
    port: int = 5005
    timeout_seconds: float = 4.0
    model_dir: str = "nlu/models"

    @property
    def url(self) -> str:
        """Base URL of the Rasa HTTP server."""
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class ActionsSection:
    host: str = "127.0.0.1"
    port: int = 5055

    @property
    def url(self) -> str:
        """URL Rasa calls for custom actions."""
        return f"http://{self.host}:{self.port}/webhook"


@dataclass(frozen=True)
class SandboxSection:
    host: str = "127.0.0.1"
    port: int = 8081
    bot_token: str = "100000001:SANDBOX-not-a-real-token"
    staff_chat_id: int = -1001000000001

    @property
    def url(self) -> str:
        """Base URL of the emulator and sandbox chat page."""
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class LinkingSection:
    code_ttl_hours: int = 72
    code_length: int = 8
    max_failed_attempts: int = 5
    lockout_minutes: int = 15


@dataclass(frozen=True)
class SupportSection:
    opens_at: str = "09:00"
    closes_at: str = "18:00"
    days: str = "mon,tue,wed,thu,fri,sat"
    transcript_lines: int = 10
    restock_poll_seconds: float = 15.0


@dataclass(frozen=True)
class StockSection:
    low_threshold: int = 50
    show_quantities: bool = True


@dataclass(frozen=True)
class OrdersSection:
    number_pattern: str = ""


@dataclass(frozen=True)
class ImportSection:
    demo_data_dir: str = "data/demo"


@dataclass(frozen=True)
class Secrets:
    """Values that only ever come from the environment."""

    telegram_bot_token: str | None = None
    action_server_token: str | None = None
    telegram_webhook_secret: str | None = None


@dataclass(frozen=True)
class Settings:
    app: AppSection = field(default_factory=AppSection)
    database: DatabaseSection = field(default_factory=DatabaseSection)
    telegram: TelegramSection = field(default_factory=TelegramSection)
    rasa: RasaSection = field(default_factory=RasaSection)
    actions: ActionsSection = field(default_factory=ActionsSection)
    sandbox: SandboxSection = field(default_factory=SandboxSection)
    linking: LinkingSection = field(default_factory=LinkingSection)
    support: SupportSection = field(default_factory=SupportSection)
    stock: StockSection = field(default_factory=StockSection)
    orders: OrdersSection = field(default_factory=OrdersSection)
    import_: ImportSection = field(default_factory=ImportSection)
    secrets: Secrets = field(default_factory=Secrets)

    @property
    def sandbox_mode(self) -> bool:
        """True when no Telegram token is configured: the local emulator stands in."""
        return not self.secrets.telegram_bot_token

    @property
    def bot_token(self) -> str:
        """The token the gateway uses (the sandbox's fake one in sandbox mode)."""
        return self.secrets.telegram_bot_token or self.sandbox.bot_token

    @property
    def bot_api_base_url(self) -> str:
        """Bot API base URL: the emulator's in sandbox mode, else the configured one."""
        if self.sandbox_mode:
            return f"{self.sandbox.url}/bot"
        return self.telegram.api_base_url

    @property
    def bot_file_base_url(self) -> str:
        """Bot API file URL, following the same rule as bot_api_base_url."""
        if self.sandbox_mode:
            return f"{self.sandbox.url}/file/bot"
        return self.telegram.file_base_url

    @property
    def staff_chat_id(self) -> int | None:
        """Where hand-offs go: the configured staff group, or the sandbox's own."""
        if self.telegram.staff_chat_id is not None:
            return self.telegram.staff_chat_id
        return self.sandbox.staff_chat_id if self.sandbox_mode else None

    @property
    def data_path(self) -> Path:
        """Absolute directory for runtime files."""
        path = Path(self.app.data_dir)
        return path if path.is_absolute() else PROJECT_ROOT / path

    def resolved_database_url(self) -> str:
        """Database URL with a relative SQLite path made absolute to the project root."""
        url = self.database.url
        prefix = "sqlite+aiosqlite:///"
        if url.startswith(prefix) and not url[len(prefix):].startswith("/"):
            rel = url[len(prefix):]
            if rel and rel != ":memory:":
                return prefix + str(PROJECT_ROOT / rel)
        return url


def _coerce(value: str, annotation: Any) -> Any:
    text = str(annotation)
    if value.lower() in {"null", "none", ""} and "None" in text:
        return None
    if "bool" in text:
        return value.lower() in {"1", "true", "yes", "on"}
    if "int" in text and "float" not in text:
        return int(value)
    if "float" in text:
        return float(value)
    return value


def _section_name(name: str) -> str:
    return "import" if name == "import_" else name


def load_settings(path: Path | str | None = None, env: dict[str, str] | None = None) -> Settings:
    """Read config.yml (or CONFIG_FILE) and apply environment overrides."""
    env = dict(os.environ if env is None else env)
    config_path = Path(path or env.get("CONFIG_FILE") or PROJECT_ROOT / "config.yml")
    raw: dict[str, Any] = {}
    if config_path.exists():
        try:
            raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{config_path} is not valid YAML: {exc}") from exc
    elif path is not None or "CONFIG_FILE" in env:
        raise ConfigError(f"config file {config_path} not found; set CONFIG_FILE to its path")

    overrides: dict[tuple[str, str], str] = {}
    for alias, key in ENV_ALIASES.items():
        if env.get(alias):
            overrides[key] = env[alias]
    for name, value in env.items():
        if name.startswith("APP__") and name.count("__") == 2:
            _, section, key = name.split("__")
            overrides[(section.lower(), key.lower())] = value

    sections: dict[str, Any] = {}
    hints = get_type_hints(Settings)
    for f in fields(Settings):
        if f.name == "secrets":
            continue
        cls = hints[f.name]
        assert is_dataclass(cls)
        section_raw = dict(raw.get(_section_name(f.name)) or {})
        cls_hints = get_type_hints(cls)
        known = {sf.name for sf in fields(cls)}
        unknown = set(section_raw) - known
        if unknown:
            raise ConfigError(
                f"{config_path}: unknown key(s) {sorted(unknown)} in section "
                f"'{_section_name(f.name)}'; known keys: {sorted(known)}"
            )
        for (section, key), value in overrides.items():
            if section == _section_name(f.name) and key in known:
                try:
                    section_raw[key] = _coerce(value, cls_hints[key])
                except ValueError as exc:
                    raise ConfigError(
                        f"environment override {section}.{key}={value!r}: {exc}") from exc
        sections[f.name] = cls(**section_raw)

    secrets = Secrets(
        telegram_bot_token=env.get("TELEGRAM_BOT_TOKEN") or None,
        action_server_token=env.get("ACTION_SERVER_TOKEN") or None,
        telegram_webhook_secret=env.get("TELEGRAM_WEBHOOK_SECRET") or None,
    )
    settings = Settings(secrets=secrets, **sections)
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    if settings.app.default_locale not in {"zh-Hans", "zh-Hant", "en"}:
        raise ConfigError("app.default_locale must be one of zh-Hans, zh-Hant, en")
    if settings.telegram.mode not in {"polling", "webhook"}:
        raise ConfigError("telegram.mode must be 'polling' or 'webhook'")
    if settings.telegram.mode == "webhook" and not settings.sandbox_mode:
        if not settings.telegram.webhook_url:
            raise ConfigError(
                "telegram.mode is 'webhook' but telegram.webhook_url is empty; set it "
                "(or TELEGRAM_WEBHOOK_URL) to the public https URL Telegram should call"
            )
