"""One settings object: config.yml, then environment overrides, typed and validated by
pydantic-settings. Secrets only ever come from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

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

# Secrets: environment variable → field of Settings.secrets. Never read from config.yml.
SECRET_VARIABLES = {
    "TELEGRAM_BOT_TOKEN": "telegram_bot_token",
    "TELEGRAM_WEBHOOK_SECRET": "telegram_webhook_secret",
    "ACTION_SERVER_TOKEN": "action_server_token",
    "RASA_AUTH_TOKEN": "rasa_auth_token",
    "IDENTITY_SIGNING_KEY": "identity_signing_key",
    "LINK_CODE_PEPPER": "link_code_pepper",
}


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the message says how to fix it."""


class Section(BaseModel):
    """A config.yml section: typed, immutable, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AppSection(Section):
    timezone: str = "Asia/Shanghai"
    default_locale: Literal["zh-Hans", "zh-Hant", "en"] = "zh-Hans"
    traditional_convention: Literal["tw", "hk"] = "tw"
    data_dir: str = "var"


class DatabaseSection(Section):
    url: str = "sqlite+aiosqlite:///var/app.db"
    echo: bool = False


class TelegramSection(Section):
    api_base_url: str = "https://api.telegram.org/bot"
    file_base_url: str = "https://api.telegram.org/file/bot"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    webhook_url: str = ""
    staff_chat_id: int | None = None
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 10.0


class RasaSection(Section):
    host: str = "127.0.0.1"
    port: int = 5005
    timeout_seconds: float = 4.0
    model_dir: str = "nlu/models"
    redis_url: str = ""  # set → Rasa's Redis lock store (several Rasa instances)

    @property
    def url(self) -> str:
        """Base URL of the Rasa HTTP server."""
        return f"http://{self.host}:{self.port}"


class ActionsSection(Section):
    host: str = "127.0.0.1"
    port: int = 5055

    @property
    def url(self) -> str:
        """URL Rasa calls for custom actions."""
        return f"http://{self.host}:{self.port}/webhook"


class SandboxSection(Section):
    host: str = "127.0.0.1"
    port: int = 8081
    bot_token: str = "100000001:SANDBOX-not-a-real-token"
    staff_chat_id: int = -1001000000001

    @property
    def url(self) -> str:
        """Base URL of the emulator and sandbox chat page."""
        return f"http://{self.host}:{self.port}"


class LinkingSection(Section):
    code_ttl_hours: int = 72
    code_length: int = 8
    max_failed_attempts: int = 5
    lockout_minutes: int = 15
    max_failed_per_code: int = 10
    max_failed_global_per_hour: int = 500


class SupportSection(Section):
    opens_at: str = "09:00"
    closes_at: str = "18:00"
    days: str = "mon,tue,wed,thu,fri,sat"
    transcript_lines: int = 10
    unanswered_close_hours: float = 48.0
    restock_poll_seconds: float = 15.0


class StockSection(Section):
    low_threshold: int = 50
    show_quantities: bool = True


class OrdersSection(Section):
    # Order numbers as the ERP writes them (core/order_numbers.py); "" = the default grammar.
    number_pattern: str = ""


class DeliverySection(Section):
    global_per_second: float = 30.0
    group_per_minute: int = 20
    private_per_second: float = 1.0
    max_attempts: int = 5
    backoff_seconds: float = 2.0
    lease_seconds: float = 60.0
    poll_seconds: float = 0.5
    batch_size: int = 50


class ImportSection(Section):
    demo_data_dir: str = "data/demo"


class PointsCampaign(Section):
    """A time-boxed earning multiplier; empty skus/categories/regions/tiers mean 'all'."""

    code: str
    starts_on: date
    ends_on: date
    multiplier: Decimal = Decimal("2")
    skus: list[str] = []
    categories: list[str] = []
    regions: list[str] = []
    tiers: list[str] = []


class PointsSection(Section):
    """Reward points: earning rules, expiry, reminders (see community/points)."""

    enabled_kinds: list[Literal["dealer", "retailer"]] = ["dealer"]
    points_per_yuan: Decimal = Decimal("1")
    return_window_days: int = Field(default=14, ge=0)
    expire_after_days: int = Field(default=365, ge=1)
    remind_days_before: int = Field(default=30, ge=0)
    rules: dict[str, int] = {"course_completed": 50, "quiz_passed": 20,
                             "participation_day": 5, "referral": 200}
    participation_daily_cap: int = Field(default=10, ge=0)
    tier_multipliers: dict[str, Decimal] = {"key": Decimal("1.5"), "potential": Decimal("1.2"),
                                            "advantage": Decimal("1.1"),
                                            "general": Decimal("1")}
    campaigns: list[PointsCampaign] = []
    adjust_roles: list[str] = ["admin"]
    approve_roles: list[str] = ["admin", "customer_service"]
    # Scheduled jobs (python -m bot.scheduler), at these local times (app.timezone).
    daily_at: time = time(2, 30)  # mature pending points, expire, queue expiry reminders
    statements_at: time = time(9, 0)  # on the 1st: last month's statements
    leaderboard_posts: bool = False  # on the 1st: last month's leaderboard to dealer groups


class SchedulerSection(Section):
    """The scheduler process: how often it looks for due jobs."""

    tick_seconds: float = Field(default=30.0, gt=0)


class CommunitySection(Section):
    """Dealer community groups (community/)."""

    store_content: bool = False          # keep group message texts (else only counts)
    register_roles: list[str] = ["admin"]  # staff roles that register groups and change them
    announce_roles: list[str] = ["admin", "customer_service"]
    activity_roles: list[str] = ["admin", "customer_service", "trainer"]


class TrainingSection(Section):
    """Courses, pushes, quizzes and certificates (training/)."""

    author_roles: list[str] = ["admin", "trainer"]   # staff roles that write/import courses
    push_roles: list[str] = ["admin", "trainer"]     # … that push lessons and schedule pushes
    report_roles: list[str] = ["admin", "trainer", "customer_service"]  # … that see progress
    files_dir: str = "training"          # attachments of imported bundles, under app.data_dir
    default_pass_mark: int = Field(default=60, ge=0, le=100)  # percent, when a quiz names none
    remind_after_days: int = Field(default=3, ge=1)  # unfinished course, no activity this long
    remind_every_days: int = Field(default=7, ge=1)  # … then at most this often
    remind_at: time = time(10, 0)        # scheduler: reminders for unfinished courses (local)
    certificate_issuer: str = "培训中心 Training Centre"
    demo_bundle: str = "data/demo/training/product-basics"  # imported by the sandbox seed


class Secrets(Section):
    """Values that only ever come from the environment."""

    telegram_bot_token: str | None = None
    telegram_webhook_secret: str | None = None
    action_server_token: str | None = None
    rasa_auth_token: str | None = None
    identity_signing_key: str | None = None
    link_code_pepper: str | None = None


class Settings(BaseSettings):
    """Everything the processes need to know; one instance per process."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, env_prefix="APP__",
                                      env_nested_delimiter="__", populate_by_name=True)

    app: AppSection = AppSection()
    database: DatabaseSection = DatabaseSection()
    telegram: TelegramSection = TelegramSection()
    rasa: RasaSection = RasaSection()
    actions: ActionsSection = ActionsSection()
    sandbox: SandboxSection = SandboxSection()
    linking: LinkingSection = LinkingSection()
    support: SupportSection = SupportSection()
    stock: StockSection = StockSection()
    orders: OrdersSection = OrdersSection()
    delivery: DeliverySection = DeliverySection()
    import_: ImportSection = Field(default=ImportSection(), alias="import")
    secrets: Secrets = Secrets()
    points: PointsSection = PointsSection()
    community: CommunitySection = CommunitySection()
    scheduler: SchedulerSection = SchedulerSection()
    training: TrainingSection = TrainingSection()

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


class _MappingEnvSource(EnvSettingsSource):
    """`APP__SECTION__KEY` overrides read from a given mapping (os.environ by default)."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._mapping = {k: v for k, v in env.items() if k.startswith("APP__")}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:  # type: ignore[override]
        return {k.lower(): v for k, v in self._mapping.items()}


def load_settings(path: Path | str | None = None, env: Mapping[str, str] | None = None
                  ) -> Settings:
    """Read config.yml (or CONFIG_FILE) and apply environment overrides and secrets."""
    env = dict(os.environ if env is None else env)
    config_path = Path(path or env.get("CONFIG_FILE") or PROJECT_ROOT / "config.yml")
    if not config_path.exists() and (path is not None or "CONFIG_FILE" in env):
        raise ConfigError(f"config file {config_path} not found; set CONFIG_FILE to its path")
    if "secrets" in _peek_yaml(config_path):
        raise ConfigError(f"{config_path}: secrets never live in the config file; set them in "
                          f"the environment ({', '.join(SECRET_VARIABLES)})")

    init: dict[str, Any] = {}
    for alias, (section, key) in ENV_ALIASES.items():
        if env.get(alias):
            init.setdefault(section, {})[key] = env[alias]
    init["secrets"] = {field: env[var] for var, field in SECRET_VARIABLES.items() if env.get(var)}

    class _Loader(Settings):
        @classmethod
        def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                       **_: PydanticBaseSettingsSource
                                       ) -> tuple[PydanticBaseSettingsSource, ...]:
            yaml_file = config_path if config_path.exists() else None
            return (InitSettingsSource(settings_cls, init), _MappingEnvSource(settings_cls, env),
                    YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))

    try:
        settings: Settings = _Loader()
    except ValidationError as exc:
        raise ConfigError(_explain(exc, config_path)) from None
    _validate(settings)
    return settings


def _peek_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of sections (app:, database:, …)")
    return data


def _explain(exc: ValidationError, path: Path) -> str:
    lines = [f"invalid settings (from {path} and the environment):"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            section = err["loc"][0] if err["loc"] else ""
            known = _known_keys(str(section))
            lines.append(f"  unknown key {where!r} in section {section!r}; known keys: {known}")
        else:
            lines.append(f"  {where}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def _known_keys(section: str) -> list[str]:
    field = Settings.model_fields.get("import_" if section == "import" else section)
    annotation = field.annotation if field else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return sorted(annotation.model_fields)
    return sorted(n if n != "import_" else "import" for n in Settings.model_fields)


def _validate(settings: Settings) -> None:
    tg = settings.telegram
    if settings.sandbox_mode:
        return
    if tg.mode == "webhook":
        if not tg.webhook_url:
            raise ConfigError(
                "telegram.mode is 'webhook' but telegram.webhook_url is empty; set it "
                "(or TELEGRAM_WEBHOOK_URL) to the public https URL Telegram should call")
        if not settings.secrets.telegram_webhook_secret:
            raise ConfigError(
                "telegram.mode is 'webhook' but TELEGRAM_WEBHOOK_SECRET is not set: without it "
                "anyone who finds the URL can post forged updates. Set TELEGRAM_WEBHOOK_SECRET "
                "to a random string of 32+ characters (letters, digits, _ and -)")
    if tg.staff_chat_id is None:
        raise ConfigError(
            "TELEGRAM_BOT_TOKEN is set but no staff group is configured: hand-offs would reach "
            "nobody. Set TELEGRAM_STAFF_CHAT_ID (or telegram.staff_chat_id) to the id of the "
            "staff group the bot is an administrator of")
