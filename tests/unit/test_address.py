"""Every text a person reads speaks to them one way: "tu" to a young person filling in alone,
"vous" to a parent, a professional or a mentor, commands and errors included (issue 10).

The flows and commands are played through `updates.handle` and rendered in French, the
reference, exactly as the Telegram edge renders them; a text of the other address fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pytest

from bot.i18n import Translator
from bot.render import File, Message, Photo, Renderer
from conversations.model import Ask, ConfirmInput, NonTextInput, Summary, TextInput
from conversations.services.actions import (
    AskErase,
    Cancel,
    Help,
    KeepData,
    Restart,
    ShowLanguages,
    ShowMyData,
    ShowPrivacy,
)
from conversations.services.replies import Reply
from tests.unit.fakes import Chat, Scene, a_catalog, an_association
from tests.unit.helpers import DEFAULT_REPLIES, inputs_of, pick, tick

# Words only one address uses. "te" and "t'" (te contactera, t'accompagne) count as "tu".
MARKERS = {
    "tu": re.compile(
        r"(?<![\w'’-])(tu|ton|ta|tes|toi|te|t['’]\w+)(?![\w'’])|-(tu|toi)\b"
        r"|\b(tape|appuie|écris|réessaie|vérifie|envoie-lui|reviens)\b|\bchoisis (une|au)\b",
        re.IGNORECASE,
    ),
    "vous": re.compile(
        r"\b(vous|votre|vos)\b|\b(tapez|appuyez|choisissez|écrivez|réessayez|vérifiez|revenez)\b",
        re.IGNORECASE,
    ),
}
OTHER = {"tu": "vous", "vous": "tu"}
RENDERER = Renderer(Translator())


def shown(reply: Reply) -> Iterable[str]:
    """What the person reads: each screen as the edge renders it, its buttons, the toast."""
    for screen in reply.screens:
        address = reply.address
        if isinstance(screen, Summary):
            address = {"mentee": "tu"}.get(screen.state.flow, "vous")
        rendered = RENDERER.screen("fr", screen, address)
        if isinstance(rendered, Message):
            yield rendered.text
            markup = rendered.markup
            for row in getattr(markup, "inline_keyboard", ()) or ():
                for button in row:
                    yield button.text
        elif isinstance(rendered, (Photo, File)):
            yield rendered.caption
    if reply.toast is not None:
        yield RENDERER.toast("fr", reply.toast)


def wrong_address(replies: list[Reply], address: str) -> list[str]:
    other = MARKERS[OTHER[address]]
    texts = [text for reply in replies for text in shown(reply)]
    # The mentee flow's own name is on the welcome's buttons ("Je cherche un·e mentor·e"):
    # first-person labels say neither.
    return [text for text in texts if other.search(re.sub(r"<[^>]+>", " ", text))]


async def play(chat: Chat, flow: str, **answers: object) -> list[Reply]:
    """A whole questionnaire answered, each reply kept, then every command a person may send."""
    replies: list[Reply] = []
    reply = await chat.choose(flow)
    replies.append(reply)
    chosen = {**DEFAULT_REPLIES[flow], **answers}
    for _turn in range(40):
        screen = reply.screens[-1] if reply.screens else None
        if isinstance(screen, Summary):
            break
        assert isinstance(screen, Ask), reply
        # A wrong answer first (the re-ask's problem is a text too), then the real one.
        replies.append(await chat.answer(TextInput("")))
        replies.append(await chat.answer(NonTextInput("sticker")))
        for given in inputs_of(chosen[screen.step.key]):  # type: ignore[arg-type]
            reply = await chat.answer(given)
            replies.append(reply)
    replies.append(await chat.answer(TextInput("bonjour")))
    replies.append(await chat.answer(ConfirmInput()))
    for action in (Help(), ShowLanguages(), ShowPrivacy(), ShowMyData(), AskErase(), KeepData()):
        replies.append(await chat.send(action))
    replies.append(await chat.start())
    replies.append(await chat.send(Cancel()))
    replies.append(await chat.send(Restart()))
    return replies


CASES = [
    ("mentee", "tu", {}),
    ("mentee", "tu", {"age": "13", "needs": tick("needs", "school_support")}),
    (
        "mentee",
        "tu",
        {
            "age": "20",
            "situation": pick("situation", "higher_education"),
            "diploma": pick("diploma", "bac"),
            "grant": pick("grant", "yes"),
        },
    ),
    ("mentee", "tu", {"contact_method": pick("contact_method", "both")}),
    ("referral", "vous", {}),
    ("referral", "vous", {"referrer_role": pick("referrer_role", "professional")}),
    ("referral", "vous", {"age": "8", "situation": pick("situation", "primary_school")}),
    (
        "referral",
        "vous",
        {
            "age": "19",
            "situation": pick("situation", "higher_education"),
            "diploma": pick("diploma", "bac"),
            "grant": pick("grant", "no"),
            "young_phone": "06 11 22 33 44",
        },
    ),
    ("mentor", "vous", {}),
]


@pytest.mark.parametrize(("flow", "address", "answers"), CASES)
async def test_a_whole_sign_up_and_every_command_speak_with_one_address(
    flow: str, address: str, answers: dict[str, object]
) -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))

    replies = await play(scene.person(101), flow, **answers)

    assert all(reply.address == address for reply in replies[1:])
    assert wrong_address(replies, address) == []


@pytest.mark.parametrize(
    ("flow", "address", "age"),
    [("mentee", "tu", "3"), ("mentee", "tu", "45"), ("referral", "vous", "3")],
)
async def test_an_early_end_speaks_with_the_flow_s_address(
    flow: str, address: str, age: str
) -> None:
    scene = Scene()
    chat = scene.person(101)
    await chat.answer_until(flow, "age")

    ended = await chat.answer(TextInput(age))

    assert ended.address == address
    assert wrong_address([ended, await chat.send(Help())], address) == []


def test_the_markers_tell_the_two_addresses_apart() -> None:
    assert MARKERS["tu"].search("Quel est ton prénom ?")
    assert MARKERS["tu"].search("Elle te contactera, et t'accompagne")
    assert MARKERS["tu"].search("As-tu un diplôme ?")
    assert not MARKERS["tu"].search("Quel âge a Nina ? Une faute de frappe ? Appuyez sur Retour")
    assert MARKERS["vous"].search("Êtes-vous d'accord ?")
    assert not MARKERS["vous"].search("Quel âge as-tu ?")
