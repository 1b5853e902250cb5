"""The questionnaires, by name: the name is what a conversation row stores."""

from __future__ import annotations

from conversations.flows.mentee import MENTEE
from conversations.flows.mentor import MENTOR
from conversations.model import Flow

FLOWS: dict[str, Flow] = {flow.name: flow for flow in (MENTEE, MENTOR)}
# Bumped whenever the consent wording changes, so each recorded consent names the text it agreed to.
CONSENT_VERSION = "2026-11-v1"
