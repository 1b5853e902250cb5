"""The dashboard's session: a signed, expiring cookie naming the staff account, and its CSRF token.

Nothing is stored server-side: every process of the bot checks the signature with the same key,
and the account's rights are read again from the database at every request, so the cookie says
only *who*, never *what they may do*.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime

COOKIE = "mentorat_dashboard"
LANGUAGE_COOKIE = "mentorat_dashboard_lang"
CSRF_FIELD = "csrf"


@dataclass(frozen=True)
class Session:
    telegram_id: int
    # The session's row (a used sign-in link): it must still be open, whatever the cookie says.
    session_id: int
    expires_at: int  # Unix time
    # Sent back in every form: a page of another site cannot read it, so cannot forge a POST.
    csrf: str

    def valid_at(self, now: datetime) -> bool:
        return now.timestamp() < self.expires_at

    def csrf_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class Signer:
    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def for_bot(cls, secret: str | None, bot_token: str) -> Signer:
        """DASHBOARD_SECRET if set, else a key derived from the bot token (the same for every
        process of one bot; changing the token signs everyone out)."""
        if secret:
            return cls(hashlib.sha256(b"dashboard-secret:" + secret.encode()).digest())
        return cls(hmac.new(bot_token.encode(), b"mentorat dashboard sessions", "sha256").digest())

    def new(self, telegram_id: int, session_id: int, expires_at: datetime) -> tuple[Session, str]:
        session = Session(
            telegram_id, session_id, int(expires_at.timestamp()), secrets.token_urlsafe(24)
        )
        return session, self.dump(session)

    def dump(self, session: Session) -> str:
        data = {
            "id": session.telegram_id,
            "sid": session.session_id,
            "exp": session.expires_at,
            "csrf": session.csrf,
        }
        return self.sign(data, "session")

    def load(self, cookie: str | None, now: datetime) -> Session | None:
        """The session in the cookie, if it is ours, well-formed and not expired."""
        data = self.unsign(cookie, "session")
        if not isinstance(data, dict):
            return None
        try:
            session = Session(
                int(data["id"]), int(data["sid"]), int(data["exp"]), str(data["csrf"])
            )
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.valid_at(now) else None

    def sign(self, value: object, purpose: str) -> str:
        """`value` as JSON with its signature; `purpose` keeps one kind of cookie from being
        replayed as another (a flash message as a session)."""
        payload = json.dumps(value, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._mac(purpose, payload))}"

    def unsign(self, cookie: str | None, purpose: str) -> object:
        """What `sign` signed for this purpose, or None when it is not ours or not well-formed."""
        if not cookie or len(cookie) > 2048 or cookie.count(".") != 1:
            return None
        body, signature = cookie.split(".")
        try:
            payload = _unb64(body)
            given = _unb64(signature)
        except ValueError:
            return None
        if not hmac.compare_digest(given, self._mac(purpose, payload)):
            return None
        try:
            return json.loads(payload)
        except ValueError:
            return None

    def _mac(self, purpose: str, payload: bytes) -> bytes:
        return hmac.new(self._key, purpose.encode() + b"\0" + payload, "sha256").digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))
    except (ValueError, TypeError, UnicodeEncodeError) as error:
        raise ValueError("not base64") from error
