"""The contact card a coordinator reads in Telegram: its text, its status line, its buttons.

Rendered once per coordinator, in their language; the status line is redrawn on each change.
"""

from __future__ import annotations

from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.actions import ActOnHandoff, encode
from bot.i18n import Translator
from conversations import engine
from conversations.flows import CONSENT_VERSION, FLOWS
from conversations.handoff import DECLINE_REASONS, HandoffStatus
from conversations.text import Text, When, _
from storage.models import AssociationRecord, Coordinator, Handoff, Profile
from storage.repositories import answers_from_json

# Steps a coordinator does not need to read: the consents are summed up in one line instead.
_NOT_SHOWN = frozenset({"consent", "parent_consent", "contact_method", "filled_by"})

NEW_CONTACT = _("🆕 <b>Nouveau contact n° %(id)s</b> pour %(association)s")
ROLE_LINES = {"mentee": _("Jeune"), "mentor": _("Futur·e mentor·e")}
LINE = _("<b>%(title)s</b> : %(value)s")
FILLED_BY = _("Inscrit·e par : %(who)s")
CONSENT_LINE = _("Accord pour être contacté·e donné le %(date)s (texte %(version)s)")
PARENTAL_LINE = _("Moins de 15 ans : accord du parent donné le %(date)s")
DEPARTMENT = _("Département")
SOURCE_LINE = _("Venu·e par : %(source)s")
TAKE = _("🙋 Je m'en occupe")
DECLINE = _("Refuser")
CONTACTED = _("📞 Contact établi")
CLOSE = _("✅ Clore")
CANCEL = _("Annuler")
STATUS_TAKEN_BY = _("✅ Pris en charge par %(coordinator)s")
STATUS_TAKEN_BY_YOU = _(
    "✅ Vous vous en occupez. Une fois le premier échange fait : « Contact établi »."
)
STATUS_CONTACTED = _("📞 Contact établi par %(coordinator)s")
STATUS_CLOSED = _("🗂 Clos par %(coordinator)s")
STATUS_DECLINED = _("↪️ Refusé par %(coordinator)s (%(reason)s) : transmis à une autre association")
STATUS_EXPIRED = _("⌛ Sans réponse depuis %(days)s jours : transmis à une autre association")
STATUS_ERASED = _("🗑 Contact n° %(id)s effacé à la demande de la personne.")


class Cards:
    def __init__(self, translator: Translator, reroute_days: int) -> None:
        self._t = translator
        self._reroute_days = reroute_days

    def with_status(
        self,
        language: str,
        card: str,
        handoff: Handoff,
        taker: Coordinator | None,
        actor: Coordinator | None,
        coordinator_id: int,
    ) -> str:
        status = HandoffStatus(handoff.status)
        taker_name = taker.first_name if taker else "?"
        line: Text | None = None
        if status is HandoffStatus.TAKEN:
            if taker is not None and taker.id == coordinator_id:
                line = STATUS_TAKEN_BY_YOU
            else:
                line = STATUS_TAKEN_BY.fmt(coordinator=taker_name)
        elif status is HandoffStatus.CONTACTED:
            line = STATUS_CONTACTED.fmt(coordinator=taker_name)
        elif status is HandoffStatus.CLOSED:
            line = STATUS_CLOSED.fmt(coordinator=taker_name)
        elif status is HandoffStatus.DECLINED:
            reasons = {choice.value: choice.label for choice in DECLINE_REASONS}
            decliner = actor.first_name if actor else taker_name
            line = STATUS_DECLINED.fmt(
                coordinator=decliner, reason=reasons.get(handoff.decline_reason or "", "?")
            )
        elif status is HandoffStatus.EXPIRED:
            line = STATUS_EXPIRED.fmt(days=self._reroute_days)
        elif status is HandoffStatus.ERASED:
            return self._t.html(language, STATUS_ERASED.fmt(id=handoff.id))
        base = card.split("\n\n— ")[0]
        if line is None:
            return base
        return f"{base}\n\n— {self._t.html(language, line)}"

    def markup(
        self,
        language: str,
        handoff: Handoff,
        coordinator: Coordinator | None,
        taker: Coordinator | None,
    ) -> dict[str, Any] | None:
        status = HandoffStatus(handoff.status)

        def button(label: Text, action: str, reason: str | None = None) -> InlineKeyboardButton:
            data = encode(ActOnHandoff(handoff.id, action, reason))
            return InlineKeyboardButton(self._t.plain(language, label), callback_data=data)

        rows: list[list[InlineKeyboardButton]] = []
        if coordinator is None or not coordinator.active:
            # A coordinator who left keeps a record of the card, with no button to press.
            rows = []
        elif status in (HandoffStatus.PROPOSED, HandoffStatus.DELIVERED):
            rows = [[button(TAKE, "take"), button(DECLINE, "decline")]]
        elif coordinator is not None and taker is not None and coordinator.id == taker.id:
            if status is HandoffStatus.TAKEN:
                rows = [[button(CONTACTED, "contacted"), button(DECLINE, "decline")]]
            elif status is HandoffStatus.CONTACTED:
                rows = [[button(CLOSE, "close")]]
        return InlineKeyboardMarkup(rows).to_dict() if rows else None

    def card(
        self, language: str, handoff: Handoff, record: AssociationRecord, profile: Profile
    ) -> str:
        """The contact as a coordinator reads it: who, where, what for, how to reach, consents."""
        flow = FLOWS[profile.role]
        answers = answers_from_json(profile.answers)
        t = self._t
        lines = [
            t.html(language, NEW_CONTACT.fmt(id=handoff.id, association=record.name)),
            f"<b>{t.html(language, ROLE_LINES[profile.role])}</b>",
        ]
        for step in flow.steps:
            if step.key in _NOT_SHOWN or step.key not in answers:
                continue
            value = engine.display(step, answers[step.key], answers)
            lines.append(t.html(language, LINE.fmt(title=step.title, value=value)))
            if step.key == "postal_code" and profile.department:
                lines.append(t.html(language, LINE.fmt(title=DEPARTMENT, value=profile.department)))
        if "filled_by" in answers and answers["filled_by"] != "myself":
            who = engine.display(flow.step("filled_by"), answers["filled_by"], answers)
            lines.append(t.html(language, FILLED_BY.fmt(who=who)))
        date = When(profile.submitted_at)
        lines.append(t.html(language, CONSENT_LINE.fmt(date=date, version=CONSENT_VERSION)))
        if answers.get("parent_consent") is True:
            lines.append(t.html(language, PARENTAL_LINE.fmt(date=date)))
        if profile.source:
            lines.append(t.html(language, SOURCE_LINE.fmt(source=profile.source)))
        return "\n".join(lines)
