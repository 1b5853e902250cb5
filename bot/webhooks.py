"""Handoffs as signed JSON POSTs to an association's CRM (the webhook channel of the catalogue).

The body is signed with HMAC-SHA256 and the association's secret, sent in `X-Mentorat-Signature`
as `sha256=<hex>`; `X-Mentorat-Delivery` is the same on every retry, so a receiver can drop repeats.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import aiohttp

from bot.relay import Undeliverable
from conversations.ports import AssociationWebhook, UnitOfWorkFactory

TIMEOUT = aiohttp.ClientTimeout(total=15)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    """Signs with the association's secret as it is when sending, so a rotated secret applies
    to retries too, and no secret is copied into the outbox."""

    def __init__(self, unit_of_work: UnitOfWorkFactory) -> None:
        self._uow = unit_of_work

    async def __call__(self, message: AssociationWebhook, delivery: str) -> None:
        """POST the message; `delivery` (its outbox key) is the same on every retry."""
        async with self._uow() as uow:
            record = await uow.catalog.by_slug(message.association)
            handoff = record.entry.get("handoff", {}) if record is not None else {}
        secret = handoff.get("webhook_secret")
        url = message.url
        if not secret or handoff.get("webhook_url") != url:
            raise Undeliverable("the association no longer has this webhook")
        body = json.dumps(message.body, ensure_ascii=False, sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Mentorat-Signature": signature(str(secret), body),
            "X-Mentorat-Event": message.event,
            "X-Mentorat-Delivery": delivery,
            "User-Agent": "mentorat-bot",
        }
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as session,
            session.post(url, data=body, headers=headers) as response,
        ):
            if 200 <= response.status < 300:
                return
            if response.status in (408, 429) or response.status >= 500:
                # The receiver may recover: the dispatcher retries with back-off.
                raise OSError(f"webhook answered {response.status}")
            raise Undeliverable(f"webhook answered {response.status}")
