"""Settings refuse what would fail later, with a message that says what to write."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.settings import Settings


def test_admin_ids_are_read_from_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_TELEGRAM_IDS", "123, 456;789")
    assert Settings().admin_telegram_ids == (123, 456, 789)


def test_an_empty_token_means_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "  ")
    assert Settings().telegram_bot_token is None


def test_a_webhook_needs_its_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.org/telegram")
    with pytest.raises(ValidationError, match="WEBHOOK_SECRET"):
        Settings()


def test_a_webhook_must_be_https(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_URL", "http://bot.example.org/telegram")
    monkeypatch.setenv("WEBHOOK_SECRET", "s3cret")
    with pytest.raises(ValidationError, match="https"):
        Settings()


@pytest.mark.parametrize("secret", ["with space", "é", "x" * 257])
def test_a_webhook_secret_telegram_would_refuse_is_refused_here(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.org/telegram")
    monkeypatch.setenv("WEBHOOK_SECRET", secret)
    with pytest.raises(ValidationError, match="A-Z a-z 0-9"):
        Settings()


def test_an_empty_webhook_secret_is_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", "")
    monkeypatch.setenv("WEBHOOK_URL", "")
    settings = Settings()
    assert settings.webhook_secret is None
    assert settings.webhook_url is None


def test_every_setting_is_documented_in_the_readme() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    undocumented = [
        name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in readme
    ]
    assert undocumented == [], "add these to the README's settings table"
