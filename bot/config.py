"""Configuration from the environment (or `.env`) with the key names of SPEC §13, checked once at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

TELEGRAM_DEFAULT_API = "https://api.telegram.org"


class ConfigError(Exception):
    """Bad configuration: the message names every bad key, one per line."""


def _split_ids(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


IdList = Annotated[list[int], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    # Telegram
    bot_token: SecretStr | None = Field(default=None, alias="BOT_TOKEN")
    telegram_api_url: str = Field(default=TELEGRAM_DEFAULT_API, alias="TELEGRAM_API_URL")
    default_language: Literal["ru", "en"] = Field(default="ru", alias="DEFAULT_LANGUAGE")
    admin_ids: IdList = Field(default_factory=list, alias="ADMIN_IDS")
    owner_id: int | None = Field(default=None, alias="OWNER_ID")
    lead_ids: IdList = Field(default_factory=list, alias="LEAD_IDS")
    leads_chat_id: int | None = Field(default=None, alias="LEADS_CHAT_ID")
    crisis_chat_id: int | None = Field(default=None, alias="CRISIS_CHAT_ID")
    admin_chat_id: int | None = Field(default=None, alias="ADMIN_CHAT_ID")
    webhook_url: str | None = Field(default=None, alias="WEBHOOK_URL")
    webhook_secret: SecretStr | None = Field(default=None, alias="WEBHOOK_SECRET")
    webhook_host: str = Field(default="127.0.0.1", alias="WEBHOOK_HOST")
    webhook_port: int = Field(default=8080, ge=1, le=65535, alias="WEBHOOK_PORT")
    # The bot's own HTTP server (SPEC §13: the CRM's pushes, health, metrics); none without HTTP_PORT.
    http_host: str = Field(default="127.0.0.1", alias="HTTP_HOST")
    http_port: int | None = Field(default=None, ge=0, le=65535, alias="HTTP_PORT")
    # The admin panel (served on HTTP_HOST:HTTP_PORT): its public address for the links /web sends, the
    # cookie-signing secret (generated and kept in the database when unset), and how long links and sessions
    # live.
    web_base_url: str | None = Field(default=None, alias="WEB_BASE_URL")
    web_secret: SecretStr | None = Field(default=None, alias="WEB_SECRET")
    web_link_minutes: int = Field(default=10, ge=1, le=60, alias="WEB_LINK_MINUTES")
    web_session_hours: int = Field(default=12, ge=1, le=24 * 14, alias="WEB_SESSION_HOURS")

    # Storage
    database_path: Path = Field(default=Path("data/bikewerk.db"), alias="DATABASE_PATH")
    artifacts_dir: Path = Field(default=Path("data/artifacts"), alias="ARTIFACTS_DIR")
    # The nightly backup (03:30 in TIMEZONE): dated copies of the database and the artifacts; 0 keeps none.
    backup_dir: Path = Field(default=Path("data/backups"), alias="BACKUP_DIR")
    backup_keep: int = Field(default=7, ge=0, alias="BACKUP_KEEP")

    # BikeWerk API
    bikewerk_api_url: str = Field(default="http://127.0.0.1:8081", alias="BIKEWERK_API_URL")
    bikewerk_api_token: SecretStr = Field(default=SecretStr(""), alias="BIKEWERK_API_TOKEN")
    sync_interval_seconds: int = Field(default=60, ge=5, alias="SYNC_INTERVAL_SECONDS")
    # HMAC-SHA256 key of the CRM's pushes (POST /crm/events); without it pushes are not taken.
    bikewerk_webhook_secret: SecretStr | None = Field(default=None, alias="BIKEWERK_WEBHOOK_SECRET")

    # Policy and time
    timezone: str = Field(default="Europe/Berlin", alias="TIMEZONE")
    policy_file: Path | None = Field(default=None, alias="POLICY_FILE")
    digest_time: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", alias="DIGEST_TIME")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", alias="LOG_LEVEL")

    _split_admins = field_validator("admin_ids", "lead_ids", mode="before")(_split_ids)

    @field_validator("http_port", mode="before")
    @classmethod
    def _empty_port(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)"
            ) from None
        return value

    @field_validator("web_base_url")
    @classmethod
    def _web_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("telegram_api_url", "bikewerk_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        bot_id, _, secret = value.get_secret_value().partition(":")
        if not bot_id.isdigit() or not secret:
            raise ValueError("does not look like a bot token (expected digits:secret from @BotFather)")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def token(self) -> str:
        if self.bot_token is None:
            raise ConfigError("BOT_TOKEN: required to run the bot (get one from @BotFather)")
        return self.bot_token.get_secret_value()


def load_settings(**overrides: object) -> Settings:
    """Read the settings; raise ConfigError naming every bad key (never a traceback for the operator)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else "?"
            field = Settings.model_fields.get(key)
            name = field.alias if field is not None and field.alias else key
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{name}: {message}")
        raise ConfigError("\n".join(lines)) from None
