"""The webhook channel of the catalogue, both ways: handoffs as signed JSON POSTs to an
association's CRM, and the CRM's signed requests back (taken, contacted, declined, closed).

Outbound, the body is signed with HMAC-SHA256 and the association's secret, sent in
`X-Mentorat-Signature` as `sha256=<hex>`; `X-Mentorat-Delivery` is the same on every retry, so a
receiver can drop repeats. Inbound, see `conversations.services.crm` and the README.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable

import aiohttp
from aiohttp import web

from bot.relay import Undeliverable
from bot.runtime import Services
from conversations.ports import AssociationWebhook, UnitOfWorkFactory
from conversations.services import crm
from conversations.services.crm import CrmRequest, Outcome

log = logging.getLogger(__name__)
# The catalogue's slugs (conversations.catalog): lowercase words and hyphens, 40 at most.
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")

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


# --- inbound: the CRM acts on its handoffs ---------------------------------------------------

TIMESTAMP_HEADER = "X-Mentorat-Timestamp"
SIGNATURE_HEADER = "X-Mentorat-Signature"
_HTTP = {
    Outcome.DONE: 200,
    Outcome.UNCHANGED: 200,
    Outcome.MALFORMED: 400,
    Outcome.UNSIGNED: 401,
    Outcome.STALE: 401,
    Outcome.NOT_FOUND: 404,
    Outcome.TOO_LATE: 409,
    Outcome.BUSY: 503,
}


def add_crm_routes(
    app: web.Application,
    services: Callable[[], Services],
    wake: Callable[[], None] = lambda: None,
) -> None:
    """POST /associations/{slug}/handoffs/{id}, on the webhook, operations or sandbox server.
    `services` is a callable because the sandbox swaps them on a reset."""

    async def act(request: web.Request) -> web.Response:
        """A CRM says it took, contacted, declined or closed one of its association's handoffs."""
        body = await _bounded_body(request)
        handoff_id = request.match_info["handoff_id"]
        if body is None:
            return web.json_response({"error": f"body over {crm.MAX_BODY} bytes"}, status=413)
        # Handoff ids are 32-bit integers: a longer number would fail in the database, not here.
        if not (handoff_id.isascii() and handoff_id.isdigit() and len(handoff_id) <= 9):
            return web.json_response({"error": "no such handoff"}, status=404)
        if not SLUG.fullmatch(request.match_info["slug"]):
            # No association has such a slug (a NUL would even fail in PostgreSQL): unsigned.
            return web.json_response({"error": "bad or missing signature"}, status=401)
        current = services()
        answer = await crm.receive(
            current.unit_of_work,
            CrmRequest(
                association=request.match_info["slug"],
                handoff_id=int(handoff_id),
                timestamp=request.headers.get(TIMESTAMP_HEADER, ""),
                signature=request.headers.get(SIGNATURE_HEADER, ""),
                body=body,
            ),
            current.clock(),
            current.policy,
        )
        if answer.queued:
            wake()
        reply: dict[str, object] = {"handoff_id": int(handoff_id)}
        if answer.status is not None:
            reply["status"] = answer.status
        if answer.error is not None:
            reply["error"] = answer.error
        else:
            reply["changed"] = answer.outcome is Outcome.DONE
        return web.json_response(reply, status=_HTTP[answer.outcome])

    app.router.add_post("/associations/{slug}/handoffs/{handoff_id}", act)


async def _bounded_body(request: web.Request) -> bytes | None:
    """The body, or None past crm.MAX_BODY: read no further than that, whatever Content-Length."""
    if (request.content_length or 0) > crm.MAX_BODY:
        return None
    body = bytearray()
    async for chunk in request.content.iter_chunked(crm.MAX_BODY):
        body += chunk
        if len(body) > crm.MAX_BODY:
            return None
    return bytes(body)
