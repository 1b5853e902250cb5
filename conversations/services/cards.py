"""The contact card a coordinator reads: its text, its status line and its buttons, as plain values.

Built once per coordinator; the status line and the buttons change with the handoff, the body does
not. The Telegram edge renders a card (HTML, inline keyboard) when it sends it.
"""

from __future__ import annotations

from conversations import engine
from conversations.entities import (
    AssociationRecord,
    Consent,
    ConsentKind,
    ConsentMethod,
    Coordinator,
    Handoff,
    Profile,
    answers_from_json,
)
from conversations.flows import FLOWS
from conversations.handoff import DECLINE_REASONS, OPEN, HandoffStatus, HandoffVerb
from conversations.ports import CardButton
from conversations.text import Lines, Text, When, _

# Steps a coordinator does not need to read: the consents are summed up in one line instead.
_NOT_SHOWN = frozenset({"consent", "parent_consent", "contact_method"})

NEW_CONTACT = _("🆕 <b>Nouveau contact n° %(id)s</b> pour %(association)s")
ROLE_LINES = {
    "mentee": _("Jeune (inscrit·e par lui-même ou elle-même)"),
    "referral": _("Jeune, inscrit·e par un parent ou un·e professionnel·le"),
    "mentor": _("Futur·e mentor·e"),
}
LINE = _("<b>%(title)s</b> : %(value)s")
CONSENT_LINE = _("Accord pour être contacté·e donné le %(date)s (texte %(version)s)")
DEPARTMENT = _("Département")
SOURCE_LINE = _("Venu·e par : %(source)s")
TAKE = _("🙋 Je m'en occupe")
DECLINE = _("Refuser")
CONTACTED = _("📞 Contact établi")
CLOSE = _("✅ Clore")
CANCEL = _("Annuler")
STATUS_TAKEN_BY = _("✅ Pris en charge par %(coordinator)s")
TEAM = _("l'équipe de l'association (depuis son outil de suivi)")
STATUS_TAKEN_BY_YOU = _(
    "✅ Vous vous en occupez. Une fois le premier échange fait : « Contact établi »."
)
STATUS_CONTACTED = _("📞 Contact établi par %(coordinator)s")
STATUS_CLOSED = _("🗂 Clos par %(coordinator)s")
STATUS_DECLINED = _("↪️ Refusé par %(coordinator)s (%(reason)s) : transmis à une autre association")
STATUS_EXPIRED = _("⌛ Sans réponse depuis %(days)s jours : transmis à une autre association")
STATUS_WITHDRAWN = _("↩️ Retiré : la personne a fait une nouvelle demande, qui remplace celle-ci.")
STATUS_ERASED = _("🗑 Contact n° %(id)s effacé à la demande de la personne.")
# Not a translated sentence: the role of a contact, in bold, on the card's second line.
_BOLD = Text("<b>%(text)s</b>")


def body(
    handoff: Handoff, record: AssociationRecord, profile: Profile, consents: list[Consent]
) -> Text:
    """The contact as a coordinator reads it: who, where, what for, how to reach, and how each
    consent was given (by whom, when, which text)."""
    flow = FLOWS[profile.flow]
    answers = answers_from_json(profile.answers)
    lines: list[Text | str] = [
        NEW_CONTACT.fmt(id=handoff.id, association=record.name),
        _BOLD.fmt(text=ROLE_LINES[profile.flow]),
    ]
    for step in flow.steps:
        if step.key in _NOT_SHOWN or step.key not in answers:
            continue
        value = engine.display(step, answers[step.key], answers)
        lines.append(LINE.fmt(title=step.title, value=value))
        if step.key == "postal_code" and profile.department:
            lines.append(LINE.fmt(title=DEPARTMENT, value=profile.department))
    for consent in consents:
        date = When(consent.given_at)
        if consent.kind == ConsentKind.PARENTAL:
            lines.append(parental_consent(consent))
        else:
            lines.append(CONSENT_LINE.fmt(date=date, version=consent.text_version))
    if profile.source:
        lines.append(SOURCE_LINE.fmt(source=profile.source))
    return Text("%(lines)s").fmt(lines=Lines(tuple(lines)))


def erased(handoff_id: int) -> Text:
    return STATUS_ERASED.fmt(id=handoff_id)


def status_line(
    handoff: Handoff,
    taker: Coordinator | None,
    actor: Coordinator | None,
    coordinator_id: int,
    reroute_days: int,
) -> Text | None:
    """Where the contact stands, as this coordinator reads it; None while nobody acted."""
    status = HandoffStatus(handoff.status)
    # Nobody of the chat took it: the association did, from its own tool (its CRM).
    taker_name: Text | str = taker.first_name if taker else TEAM
    if status is HandoffStatus.TAKEN:
        if taker is not None and taker.id == coordinator_id:
            return STATUS_TAKEN_BY_YOU
        return STATUS_TAKEN_BY.fmt(coordinator=taker_name)
    if status is HandoffStatus.CONTACTED:
        return STATUS_CONTACTED.fmt(coordinator=taker_name)
    if status is HandoffStatus.CLOSED:
        return STATUS_CLOSED.fmt(coordinator=taker_name)
    if status is HandoffStatus.DECLINED:
        reasons = {choice.value: choice.label for choice in DECLINE_REASONS}
        decliner = actor.first_name if actor else taker_name
        return STATUS_DECLINED.fmt(
            coordinator=decliner, reason=reasons.get(handoff.decline_reason or "", "?")
        )
    if status is HandoffStatus.EXPIRED:
        return STATUS_EXPIRED.fmt(days=reroute_days)
    if status is HandoffStatus.WITHDRAWN:
        return STATUS_WITHDRAWN
    return None


def buttons(
    handoff: Handoff, coordinator: Coordinator | None, taker: Coordinator | None
) -> tuple[CardButton, ...]:
    """What this coordinator may press now: take or decline an open contact; the taker moves on."""
    status = HandoffStatus(handoff.status)
    if coordinator is None or not coordinator.active:
        # A coordinator who left keeps a record of the card, with no button to press.
        return ()
    if status in OPEN:
        return (CardButton(HandoffVerb.TAKE, TAKE), CardButton(HandoffVerb.DECLINE, DECLINE))
    if taker is not None and coordinator.id == taker.id:
        if status is HandoffStatus.TAKEN:
            return (
                CardButton(HandoffVerb.CONTACTED, CONTACTED),
                CardButton(HandoffVerb.DECLINE, DECLINE),
            )
        if status is HandoffStatus.CONTACTED:
            return (CardButton(HandoffVerb.CLOSE, CLOSE),)
    return ()


def decline_reasons() -> tuple[CardButton, ...]:
    """Asked before a decline: why (full, out of scope, unreachable), or cancel."""
    return (
        *(CardButton(HandoffVerb.DECLINE, c.label, c.value) for c in DECLINE_REASONS),
        CardButton(HandoffVerb.KEEP, CANCEL),
    )


def parental_consent(consent: Consent) -> Text:
    """How a parent's consent was given, as the card shows it."""
    return CONSENT_HOW.get(consent.method, CONSENT_HOW[ConsentMethod.IN_CHAT]).fmt(
        date=When(consent.given_at), version=consent.text_version
    )


CONSENT_HOW: dict[str, Text] = {
    ConsentMethod.IN_CHAT: _(
        "Moins de 15 ans : accord du parent, qui a rempli le questionnaire, le %(date)s (texte "
        "%(version)s)"
    ),
    ConsentMethod.PARENT_ACCOUNT: _(
        "Moins de 15 ans : accord confirmé par le parent depuis son propre compte Telegram, le "
        "%(date)s (texte %(version)s)"
    ),
    ConsentMethod.ATTESTED: _(
        "Moins de 15 ans : accord du parent attesté par le ou la professionnel·le le %(date)s "
        "(texte %(version)s) : à confirmer avec le parent lors du premier appel"
    ),
}
