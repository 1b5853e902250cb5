"""Settings from the environment (and an optional `.env`), documented in the README's table."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///data/mentorat.db"
SAMPLE_CATALOG = Path(__file__).parent / "data" / "catalog.sample.yaml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    telegram_bot_token: SecretStr | None = None
    # The Bot API base; the token is appended to it, as the Bot API specifies (…/bot<token>/method).
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    database_url: str = DEFAULT_DATABASE_URL
    admin_telegram_ids: Annotated[tuple[int, ...], NoDecode] = ()
    # Imported automatically when the database has no association yet.
    catalog_path: Path = SAMPLE_CATALOG
    log_level: str = "INFO"
    # Webhook mode (several processes behind a load balancer): Telegram POSTs updates to this
    # public HTTPS URL, which a reverse proxy forwards to WEB_HOST:WEB_PORT (same path).
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    # Without a token, `run` serves the sandbox page here, on its own database; the image sets
    # ALLOW_SANDBOX=false, so that a forgotten token is an error, never a public test chat.
    allow_sandbox: bool = True
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8080, ge=1, le=65535)
    sandbox_database_url: str = "sqlite:///data/sandbox.db"
    # Silence: coordinators are reminded, then the contact goes to the next association.
    handoff_reminder_hours: float = Field(default=48, gt=0)
    handoff_reroute_days: float = Field(default=7, gt=0)
    # Retention (CNIL): unfinished questionnaires, then everything about a person, are erased.
    abandoned_conversation_days: float = Field(default=30, gt=0)
    profile_retention_days: float = Field(default=3 * 365, gt=0)
    # One reminder, with a "Reprendre" button, to a person who stopped mid-questionnaire this
    # many hours ago; 0 turns it off.
    nudge_after_hours: float = Field(default=24, ge=0)
    # An under-15 alone forwards a link to a parent: valid this long, reminded at half-time.
    parental_link_days: float = Field(default=7, gt=0)
    # How often the silence timers and the retention purge are checked.
    timer_seconds: float = Field(default=60, gt=0)
    # Each Monday from 08:00 (Paris), every admin gets last week's figures in the chat.
    weekly_digest: bool = True
    # A dispatcher that dies mid-send leaves its messages to another after this long.
    outbox_lease_seconds: float = Field(default=60, gt=0)
    # An update a process stored but did not finish for this long is taken over by another
    # (its process died): replayed, or its reply sent again.
    inbox_takeover_seconds: float = Field(default=30, gt=0)
    # Telegram's flood limit (~30 messages a second per bot); 0 lifts it (a local Bot API server).
    telegram_max_requests_per_second: float = Field(default=30, ge=0)
    # Telegram's HTTP client: aiohttp (several times cheaper per request), or PTB's own httpx.
    telegram_http_client: Literal["aiohttp", "httpx"] = "aiohttp"
    # Updates of different chats handled at once; one chat's updates are always in order.
    max_concurrent_updates: int = Field(default=64, ge=1, le=1024)
    # The staff dashboard's public address (the sign-in links sent by /dashboard point there);
    # default: WEBHOOK_URL's origin, else http://WEB_HOST:WEB_PORT.
    dashboard_url: str | None = None
    # Signs the dashboard's session cookies; default: derived from the bot token, so that every
    # process of one bot accepts the others' sessions.
    dashboard_secret: Annotated[SecretStr, Field(min_length=32)] | None = None

    @property
    def dashboard_base_url(self) -> str:
        if self.dashboard_url:
            return self.dashboard_url.rstrip("/")
        if self.webhook_url:
            parts = urlsplit(self.webhook_url)
            return f"{parts.scheme}://{parts.netloc}"
        host = "127.0.0.1" if self.web_host in ("", "0.0.0.0", "::") else self.web_host
        return f"http://{host}:{self.web_port}"

    @field_validator("admin_telegram_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(int(part) for part in value.replace(";", ",").split(",") if part.strip())
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _telegram_accepts_the_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # Bot API: 1-256 characters, only A-Z, a-z, 0-9, _ and -.
        if value is not None and not re.fullmatch(
            r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()
        ):
            raise ValueError("WEBHOOK_SECRET: 1 to 256 characters among A-Z a-z 0-9 _ -")
        return value

    @model_validator(mode="after")
    def _webhook_needs_its_secret(self) -> Settings:
        if self.webhook_url and self.webhook_secret is None:
            raise ValueError("WEBHOOK_URL needs WEBHOOK_SECRET (random, 32+ characters)")
        if self.webhook_url and not self.webhook_url.startswith("https://"):
            raise ValueError("WEBHOOK_URL must be https:// (Telegram only calls HTTPS webhooks)")
        return self

    @field_validator("dashboard_url")
    @classmethod
    def _dashboard_url_is_a_plain_address(cls, value: str | None) -> str | None:
        # It goes into a link in the chat: an address, nothing that could break out of it.
        if value is not None and not re.fullmatch(
            r"https?://[A-Za-z0-9.\-]+(:\d+)?(/[\w.\-/]*)?", value
        ):
            raise ValueError("DASHBOARD_URL: an http(s) address such as https://bot.example.org")
        return value

    @field_validator(
        "telegram_bot_token",
        "webhook_secret",
        "webhook_url",
        "dashboard_url",
        "dashboard_secret",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value
