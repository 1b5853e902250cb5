"""The staff dashboard at /admin: server-rendered pages for the Collectif's admins and the
associations' coordinators, served by the bot's own aiohttp server in every mode.

No JavaScript: filters are GET forms, changes are POST forms carrying the session's CSRF token,
and each POST answers with a redirect (post/redirect/get), so a reload never acts twice. Every
page reads the account's rights again (`access.staff`), and each change is audited.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

import segno
from aiohttp import web
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from bot.dashboard import charts
from bot.dashboard.sessions import COOKIE, CSRF_FIELD, LANGUAGE_COOKIE, Session, Signer
from bot.runtime import Services
from bot.settings import Settings
from conversations.flows import FLOWS
from conversations.handoff import DECLINE_REASONS, HandoffVerb
from conversations.ports import Conflict
from conversations.services import access, catalogue, contacts, coordinators, stats
from conversations.services.access import Staff
from conversations.text import LANGUAGES, Text, _, pick_language

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
FRENCH_TIME = ZoneInfo("Europe/Paris")
FLASH_COOKIE = "mentorat_dashboard_flash"
# Pages and charts are made of the bot's own files and data: nothing else may load or frame them.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
# Tries of a press on the contacts page racing a colleague's (as updates.handle does).
ATTEMPTS = 3
# What the funnel and exports show when no dates are given.
DEFAULT_DAYS = 30
# Dates a filter may name: the bot did not exist before, and 9999-12-31 + 1 day overflows.
EARLIEST, LATEST = date(2020, 1, 1), date(2100, 12, 31)
# A sign-in token as access.new_link makes it (URL-safe base64); anything else is refused
# before it reaches a page (a form action built from "../../sign-out" would post elsewhere).
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,64}")
# A date range longer than this is refused rather than read in full.
LONGEST_RANGE = timedelta(days=3 * 366)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class _Visit:
    """What the guard learnt about one request, for its page."""

    now: datetime
    language: str
    session: Session | None = None
    staff: Staff | None = None
    flash: Text | None = None
    # An export under way: its answer has started.
    streaming: bool = False


VISIT = web.RequestKey("visit", _Visit)


@dataclass(frozen=True)
class Dashboard:
    """What the pages need: the running services (the sandbox swaps them on a reset, hence a
    callable), the bot's username (invite links name it) and the settings."""

    services: Callable[[], Services]
    bot_username: Callable[[], str]
    bot_token: str
    settings: Settings

    @property
    def secure_cookies(self) -> bool:
        return self.settings.dashboard_base_url.startswith("https://")


def add_dashboard_routes(app: web.Application, dashboard: Dashboard) -> None:
    """Mounts the dashboard at /admin on `app` (the webhook, operations or sandbox server)."""

    async def to_the_dashboard(_request: web.Request) -> web.StreamResponse:
        return _see_other("/admin/")

    # "/admin" as typed in an address bar: the dashboard lives at "/admin/".
    app.router.add_get("/admin", to_the_dashboard)
    app.add_subapp("/admin", _admin_app(dashboard))


def _admin_app(dashboard: Dashboard) -> web.Application:
    settings = dashboard.settings
    secret = settings.dashboard_secret.get_secret_value() if settings.dashboard_secret else None
    signer = Signer.for_bot(secret, dashboard.bot_token)
    templates = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    pages = _Pages(dashboard, signer, templates)
    app = web.Application(middlewares=[pages.guard])
    app.router.add_static("/static/", HERE / "static")
    app.router.add_get("/", pages.overview)
    app.router.add_get("/sign-in/{token}", pages.sign_in_page)
    app.router.add_post("/sign-in/{token}", pages.sign_in, name="sign_in")
    app.router.add_post("/sign-out", pages.sign_out)
    app.router.add_get("/funnel", pages.funnel)
    app.router.add_get("/funnel.png", pages.funnel_chart)
    app.router.add_get("/associations", pages.associations)
    app.router.add_post("/associations/{id:\\d{1,9}}/pause", pages.pause)
    app.router.add_post("/associations/{id:\\d{1,9}}/capacity", pages.capacity)
    app.router.add_get("/coordinators", pages.coordinators)
    app.router.add_post("/coordinators/{id:\\d{1,9}}/remove", pages.remove_coordinator)
    app.router.add_post("/invites", pages.invite)
    app.router.add_get("/contacts", pages.contacts)
    app.router.add_post("/contacts/{id:\\d{1,9}}", pages.act)
    app.router.add_get("/exports", pages.exports)
    app.router.add_get("/exports/handoffs.csv", pages.export_handoffs)
    app.router.add_get("/exports/funnel.csv", pages.export_funnel)
    app.router.add_get("/audit", pages.audit)
    return app


class _Forbidden(Exception):
    """Answered with the 403 page; `reason` is one of the page's messages."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Pages:
    def __init__(self, dashboard: Dashboard, signer: Signer, templates: Environment) -> None:
        self._dashboard = dashboard
        self._signer = signer
        self._templates = templates

    @property
    def _services(self) -> Services:
        return self._dashboard.services()

    # --- every request ---------------------------------------------------------------------

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Language, session, rights and CSRF, then security headers on whatever comes back."""
        now = self._services.clock()
        visit = _Visit(now, self._language(request))
        request[VISIT] = visit
        visit.session = self._signer.load(request.cookies.get(COOKIE), now)
        visit.flash = _flash_text(self._signer.unsign(request.cookies.get(FLASH_COOKIE), "flash"))
        try:
            response = await self._answer(request, handler, visit)
        except web.HTTPException:
            raise
        except Conflict:
            # A colleague changed the same rows at the same moment: nothing was changed here.
            response = self._page(request, "forbidden.html", status=409, reason="conflict")
        except Exception:
            if visit.streaming:
                # Its 200 and part of its body are gone already: a second answer would land
                # inside the download. Dropping the connection marks the download failed.
                raise
            # The database gone away, say: a page that says so, never a trace. The log has the
            # error's type and where, not the request (it may carry a sign-in token).
            resource = request.match_info.route.resource
            where = resource.canonical if resource is not None else "?"
            log.exception("dashboard: %s %s failed", request.method, where)
            response = self._unavailable(request)
        if "lang" in request.query and request.query["lang"] in LANGUAGES:
            response.set_cookie(
                LANGUAGE_COOKIE,
                request.query["lang"],
                max_age=365 * 24 * 3600,
                httponly=True,
                samesite="Lax",
                secure=self._dashboard.secure_cookies,
                path="/admin",
            )
        if visit.flash is not None and FLASH_COOKIE not in response.cookies:
            response.del_cookie(FLASH_COOKIE, path="/admin")
        _safety_headers(response.headers)
        return response

    async def _answer(
        self, request: web.Request, handler: Handler, visit: _Visit
    ) -> web.StreamResponse:
        session = visit.session
        if session is not None:
            async with self._services.unit_of_work() as uow:
                visit.staff = await access.in_session(
                    uow,
                    session.session_id,
                    session.telegram_id,
                    self._services.policy.admins,
                    visit.now,
                )
        signing_in = request.match_info.route.name == "sign_in"
        try:
            if request.method == "POST" and _cross_site(request):
                log.warning("dashboard: a form posted from another site was refused")
                raise _Forbidden("csrf")
            if request.method == "POST" and not signing_in:
                form = await request.post()
                given = form.get(CSRF_FIELD)
                if session is None or not session.csrf_matches(
                    given if isinstance(given, str) else None
                ):
                    log.warning("dashboard: a form without a valid CSRF token was refused")
                    raise _Forbidden("csrf")
            response = await handler(request)
        except _Forbidden as refused:
            response = self._page(request, "forbidden.html", status=403, reason=refused.reason)
        return response

    def _language(self, request: web.Request) -> str:
        asked = request.query.get("lang") or request.cookies.get(LANGUAGE_COOKIE)
        if asked in LANGUAGES:
            return str(asked)
        accepted = request.headers.get("Accept-Language", "")
        first = accepted.split(",")[0].split(";")[0].strip()
        return pick_language(None, first or None)

    def _staff(self, request: web.Request, admin: bool = False) -> Staff:
        who: Staff | None = request[VISIT].staff
        if who is None:
            raise _Forbidden("signed_out" if request[VISIT].session is None else "not_staff")
        if admin and not who.admin:
            raise _Forbidden("admins_only")
        return who

    # --- rendering ---------------------------------------------------------------------------

    def _page(
        self, request: web.Request, name: str, status: int = 200, **context: Any
    ) -> web.Response:
        language: str = request[VISIT].language
        session: Session | None = request[VISIT].session
        translator = self._services.translator

        def gettext(msgid: str, **params: Any) -> Markup:
            return (
                Markup(translator.template(language, msgid)) % params
                if params
                else Markup(translator.template(language, msgid))
            )

        def ngettext(singular: str, plural: str, count: int, **params: Any) -> Markup:
            text = Markup(translator.template(language, singular, plural, count))
            return text % {"count": _number(count, language), **params}

        def text(value: Text) -> Markup:
            # Domain texts are trusted HTML with escaped parameters (bot.i18n).
            return Markup(translator.html(language, value))

        flash = request[VISIT].flash
        html = self._templates.get_template(name).render(
            _=gettext,
            ngettext=ngettext,
            text=text,
            number=lambda value: _number(value, language),
            percent=lambda value: "–" if value is None else format_percent(value, locale=language),
            hours=lambda value: _hours(value, language),
            moment=lambda value: _moment(value, language),
            day=lambda value: format_date(value.astimezone(FRENCH_TIME), "full", locale=language),
            language=language,
            other_language="en" if language == "fr" else "fr",
            staff=request[VISIT].staff,
            csrf=session.csrf if session is not None else "",
            path=request.path,
            flash=text(flash) if flash is not None else None,
            bot=self._dashboard.bot_username(),
            **context,
        )
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

    def _unavailable(self, request: web.Request) -> web.Response:
        """Drawn without the database: the page of a dashboard that cannot read its figures."""
        try:
            return self._page(request, "unavailable.html", status=503)
        except Exception:
            return web.Response(status=503, text="503: the dashboard cannot work right now\n")

    def _back(self, to: str, flash: Text | None = None) -> web.Response:
        """After a change: to the page that shows it, with a one-time message."""
        response = _see_other(to)
        if flash is not None:
            response.set_cookie(
                FLASH_COOKIE,
                self._signer.sign(_flash_data(flash), "flash"),
                max_age=60,
                httponly=True,
                samesite="Lax",
                secure=self._dashboard.secure_cookies,
                path="/admin",
            )
        return response

    # --- signing in and out ------------------------------------------------------------------

    async def sign_in_page(self, request: web.Request) -> web.StreamResponse:
        """The link from the chat shows a button: opening the link alone (a link preview, a
        mail scanner) does not use it up."""
        token = request.match_info["token"]
        if not TOKEN_SHAPE.fullmatch(token):
            raise _Forbidden("link_invalid")
        return self._page(request, "sign_in.html", token=token)

    async def sign_in(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        now = request[VISIT].now
        if not TOKEN_SHAPE.fullmatch(token):
            raise _Forbidden("link_invalid")
        async with self._services.unit_of_work() as uow:
            signed_in = await access.sign_in(uow, token, self._services.policy.admins, now)
            await uow.commit()
        if signed_in is None:
            log.info("dashboard: an unknown, used or expired sign-in link was refused")
            raise _Forbidden("link_invalid")
        who = signed_in.who
        log.info("dashboard: %s %s signed in", who.role, who.telegram_id)
        _session, cookie = self._signer.new(
            who.telegram_id, signed_in.session_id, signed_in.ends_at
        )
        response = _see_other("/admin/" if who.admin else "/admin/contacts")
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=int(access.SESSION_VALID_FOR.total_seconds()),
            httponly=True,
            samesite="Lax",
            secure=self._dashboard.secure_cookies,
            path="/admin",
        )
        return response

    async def sign_out(self, request: web.Request) -> web.StreamResponse:
        session = request[VISIT].session
        if session is not None:
            async with self._services.unit_of_work() as uow:
                await access.sign_out(uow, session.session_id, request[VISIT].now)
                await uow.commit()
        response = _see_other("/admin/")
        response.del_cookie(COOKIE, path="/admin")
        return response

    # --- pages ---------------------------------------------------------------------------------

    async def overview(self, request: web.Request) -> web.StreamResponse:
        who = self._staff(request)
        if not who.admin:
            return _see_other("/admin/contacts")
        period = stats.week_of(request[VISIT].now)
        figures = await stats.overview(self._services.unit_of_work, period)
        return self._page(
            request,
            "overview.html",
            figures=figures,
            flows=stats.FLOW_NAMES,
            last_day=period.end - timedelta(days=1),
        )

    async def funnel(self, request: web.Request) -> web.StreamResponse:
        self._staff(request, admin=True)
        query = self._funnel_query(request)
        funnels = await stats.funnel(self._services.unit_of_work, query, request[VISIT].now)
        sources = await stats.sources(self._services.unit_of_work)
        return self._page(
            request,
            "funnel.html",
            query=query,
            funnels=funnels,
            sources=sources,
            flows=stats.FLOW_NAMES,
            steps=stats.STEP_TITLES,
            start=_local_date(query.period.start),
            end=_local_date(query.period.end - timedelta(days=1)),
            # Each section names its own flow after this.
            chart_query=urlencode(
                {k: v for k, v in request.query.items() if k not in ("lang", "flow")}
            ),
        )

    async def funnel_chart(self, request: web.Request) -> web.StreamResponse:
        self._staff(request, admin=True)
        query = self._funnel_query(request)
        flow = request.query.get("flow") or "mentee"
        if flow not in FLOWS:
            raise web.HTTPNotFound()
        funnels = await stats.funnel(
            self._services.unit_of_work,
            stats.FunnelQuery(query.period, flow, query.language, query.source),
            request[VISIT].now,
        )
        language = request[VISIT].language
        translator = self._services.translator
        title = translator.plain(language, stats.FLOW_NAMES[flow])
        png = await asyncio.to_thread(
            charts.funnel_chart, funnels[0], title, lambda text: translator.plain(language, text)
        )
        return web.Response(body=png, content_type="image/png")

    async def associations(self, request: web.Request) -> web.StreamResponse:
        who = self._staff(request)
        now = request[VISIT].now
        period = self._period(request)
        only = None if who.admin else who.associations
        figures = await stats.associations(self._services.unit_of_work, period, now, only)
        gaps = await stats.gaps(self._services.unit_of_work, period) if who.admin else ()
        return self._page(
            request,
            "associations.html",
            associations=figures,
            gaps=gaps,
            flows=stats.FLOW_NAMES,
            reasons={choice.value: choice.label for choice in DECLINE_REASONS},
            start=_local_date(period.start),
            end=_local_date(period.end - timedelta(days=1)),
        )

    async def pause(self, request: web.Request) -> web.StreamResponse:
        who = self._staff(request)
        form = await request.post()
        paused = form.get("paused") == "1"
        async with self._services.unit_of_work() as uow:
            record = await catalogue.set_paused(
                uow, who, int(request.match_info["id"]), paused, request[VISIT].now
            )
            await uow.commit()
        if record is None:
            raise _Forbidden("not_yours")
        done = PAUSED if paused else RESUMED
        return self._back("/admin/associations", done.fmt(association=record.name))

    async def capacity(self, request: web.Request) -> web.StreamResponse:
        who = self._staff(request)
        form = await request.post()
        given = str(form.get("capacity", "")).strip()
        if given and not (given.isascii() and given.isdigit() and len(given) <= 5):
            return self._back("/admin/associations", CAPACITY_INVALID)
        capacity = int(given) if given else None
        try:
            async with self._services.unit_of_work() as uow:
                record = await catalogue.set_capacity(
                    uow, who, int(request.match_info["id"]), capacity, request[VISIT].now
                )
                await uow.commit()
        except ValueError:
            return self._back("/admin/associations", CAPACITY_INVALID)
        if record is None:
            raise _Forbidden("not_yours")
        return self._back("/admin/associations", CAPACITY_SET.fmt(association=record.name))

    async def coordinators(self, request: web.Request) -> web.StreamResponse:
        who = self._staff(request)
        async with self._services.unit_of_work() as uow:
            listing = await coordinators.listing_for(uow, who)
            records = [r for r in await uow.catalog.records() if who.sees(r.id)]
        return self._page(request, "coordinators.html", listing=listing, records=records)

    async def remove_coordinator(self, request: web.Request) -> web.StreamResponse:
        who = self._staff(request, admin=True)
        async with self._services.unit_of_work() as uow:
            record = await coordinators.remove_by_admin(
                uow, who, int(request.match_info["id"]), request[VISIT].now, self._services.policy
            )
            await uow.commit()
        if record is None:
            return self._back("/admin/coordinators", ALREADY_REMOVED)
        return self._back("/admin/coordinators", REMOVED.fmt(association=record.name))

    async def invite(self, request: web.Request) -> web.StreamResponse:
        who = self._staff(request)
        form = await request.post()
        given = str(form.get("association", ""))
        if not (given.isascii() and given.isdigit() and len(given) <= 9):
            raise _Forbidden("not_yours")
        async with self._services.unit_of_work() as uow:
            invitation = await coordinators.invite_for(uow, who, int(given), request[VISIT].now)
            await uow.commit()
        if invitation is None:
            raise _Forbidden("not_yours")
        link = f"https://t.me/{self._dashboard.bot_username()}?start={invitation.token}"
        qr = segno.make(link, error="m").svg_data_uri(scale=6, border=2)
        # Shown once, never stored in clear: a page, not a redirect (a reload makes no new one).
        return self._page(request, "invite.html", invitation=invitation, link=link, qr=qr)

    async def contacts(self, request: web.Request) -> web.StreamResponse:
        who = self._staff(request)
        async with self._services.unit_of_work() as uow:
            rows = await contacts.queue(uow, who)
        return self._page(
            request,
            "contacts.html",
            rows=rows,
            reasons=DECLINE_REASONS,
            flows=stats.FLOW_NAMES,
        )

    async def act(self, request: web.Request) -> web.StreamResponse:
        who = self._staff(request)
        form = await request.post()
        try:
            verb = HandoffVerb(str(form.get("verb", "")))
        except ValueError:
            raise _Forbidden("not_yours") from None
        reason = form.get("reason")
        for _attempt in range(ATTEMPTS):
            try:
                async with self._services.unit_of_work() as uow:
                    toast = await contacts.act(
                        uow,
                        who,
                        int(request.match_info["id"]),
                        verb,
                        str(reason) if isinstance(reason, str) and reason else None,
                        request[VISIT].now,
                        self._services.policy,
                    )
                    await uow.commit()
                return self._back("/admin/contacts", toast)
            except Conflict:
                # A colleague pressed at the same moment (here or in Telegram): read again, and
                # the answer is theirs ("already taken by…"), as with the Telegram buttons.
                continue
        raise RuntimeError("a press on the contacts page kept conflicting")

    async def exports(self, request: web.Request) -> web.StreamResponse:
        self._staff(request, admin=True)
        period = self._period(request)
        return self._page(
            request,
            "exports.html",
            start=_local_date(period.start),
            end=_local_date(period.end - timedelta(days=1)),
        )

    async def export_handoffs(self, request: web.Request) -> web.StreamResponse:
        return await self._csv(request, "handoffs", stats.handoff_rows)

    async def export_funnel(self, request: web.Request) -> web.StreamResponse:
        return await self._csv(request, "funnel", stats.funnel_rows)

    async def _csv(
        self,
        request: web.Request,
        name: str,
        rows: Callable[[Any, stats.Period], AsyncIterator[tuple[str, ...]]],
    ) -> web.StreamResponse:
        who = self._staff(request, admin=True)
        period = self._period(request)
        start, end = _local_date(period.start), _local_date(period.end - timedelta(days=1))
        async with self._services.unit_of_work() as uow:
            access.record(uow, who, f"export_{name}", f"{start}..{end}", request[VISIT].now)
            await uow.commit()
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="{name}-{start}-{end}.csv"',
            }
        )
        # Sent before the guard sees the response: the headers go on now.
        _safety_headers(response.headers)
        await response.prepare(request)
        request[VISIT].streaming = True
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        async for row in rows(self._services.unit_of_work, period):
            writer.writerow([_cell(value) for value in row])
            if buffer.tell() > 64 * 1024:
                await response.write(buffer.getvalue().encode())
                buffer.seek(0)
                buffer.truncate()
        await response.write(buffer.getvalue().encode())
        await response.write_eof()
        return response

    async def audit(self, request: web.Request) -> web.StreamResponse:
        self._staff(request, admin=True)
        async with self._services.unit_of_work() as uow:
            entries = await uow.audit.recent(200)
        return self._page(request, "audit.html", entries=entries)

    # --- filters -------------------------------------------------------------------------------

    def _period(self, request: web.Request) -> stats.Period:
        """From the `start` and `end` dates (French days, both included); the last 30 days when
        absent; a malformed or reversed range falls back to the default, never an error page."""
        today = request[VISIT].now.astimezone(FRENCH_TIME).date()
        start = _parse_date(request.query.get("start")) or today - timedelta(days=DEFAULT_DAYS - 1)
        end = _parse_date(request.query.get("end")) or today
        if end < start or end - start > LONGEST_RANGE:
            start, end = today - timedelta(days=DEFAULT_DAYS - 1), today
        return stats.Period(_utc_midnight(start), _utc_midnight(end + timedelta(days=1)))

    def _funnel_query(self, request: web.Request) -> stats.FunnelQuery:
        flow = request.query.get("flow") or None
        language = request.query.get("language") or None
        source = (request.query.get("source") or "")[:64] or None
        return stats.FunnelQuery(
            self._period(request),
            flow if flow in FLOWS else None,
            language if language in LANGUAGES else None,
            source,
        )


# --- texts of the pages' messages ------------------------------------------------------------

PAUSED = _("%(association)s est en pause : elle ne reçoit plus de contacts.")
RESUMED = _("%(association)s reçoit de nouveau des contacts.")
CAPACITY_SET = _("Capacité de %(association)s enregistrée.")
CAPACITY_INVALID = _("La capacité est un nombre entier de contacts par semaine, entre 0 et 10 000.")
REMOVED = _("Le coordinateur ne reçoit plus les contacts de %(association)s.")
ALREADY_REMOVED = _("Ce coordinateur avait déjà été retiré.")


def _parse_date(given: str | None) -> date | None:
    if not given or len(given) != 10:
        return None
    try:
        day = date.fromisoformat(given)
    except ValueError:
        return None
    # Far from the calendar's ends, where a day more or a time zone would not fit.
    return day if EARLIEST <= day <= LATEST else None


def _utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), FRENCH_TIME).astimezone(UTC)


def _local_date(moment: datetime) -> str:
    return moment.astimezone(FRENCH_TIME).date().isoformat()


def _number(value: float | int | None, language: str) -> str:
    return "–" if value is None else format_decimal(value, locale=language)


def _hours(value: float | None, language: str) -> str:
    return "–" if value is None else f"{format_decimal(round(value, 1), locale=language)} h"


def _safety_headers(headers: Any) -> None:
    """Every answer of the dashboard, pages, redirects, refusals and exports alike."""
    headers.setdefault("Content-Security-Policy", CSP)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    # The sign-in link's token is in the address: never pass it on to another site. (Not
    # no-referrer: Chromium then sends "Origin: null" with the page's own forms.)
    headers["Referrer-Policy"] = "same-origin"
    headers.setdefault("Cache-Control", "no-store")


def _cell(value: str) -> str:
    """A CSV cell a spreadsheet will not run: a /start payload is typed by anyone, and "=…" in
    Excel or LibreOffice is a formula (CSV injection, OWASP)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _cross_site(request: web.Request) -> bool:
    """A form posted from another site (the browser says so in Origin): refused even before the
    CSRF token is read, the sign-in form included (no signing a victim into one's own account)."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin == "null"
    return urlsplit(origin).netloc != request.host


def _see_other(to: str) -> web.Response:
    # Returned, not raised: the guard then adds its headers and cookies to it.
    return web.Response(status=303, headers={"Location": to})


def _flash_data(text: Text) -> dict[str, object]:
    # Only plain parameters travel in the cookie: the toasts and notices shown here have no other.
    params = {k: v for k, v in text.params.items() if isinstance(v, (str, int))}
    return {"msgid": text.msgid, "params": params}


def _flash_text(data: object) -> Text | None:
    if not isinstance(data, dict) or not isinstance(data.get("msgid"), str):
        return None
    params = data.get("params")
    if not isinstance(params, dict):
        return None
    return Text(data["msgid"], {str(k): v for k, v in params.items() if isinstance(v, (str, int))})


def _moment(value: datetime | None, language: str) -> str:
    if value is None:
        return "–"
    return format_datetime(value.astimezone(FRENCH_TIME), "short", locale=language)
