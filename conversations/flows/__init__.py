"""The questionnaires, by name: the name is what a conversation row stores."""

from __future__ import annotations

from conversations.flows.mentee import MENTEE
from conversations.flows.mentor import MENTOR
from conversations.flows.referral import REFERRAL
from conversations.model import Flow

FLOWS: dict[str, Flow] = {flow.name: flow for flow in (MENTEE, REFERRAL, MENTOR)}
# The role a flow's profile has in matching: a young person signed up by a parent or a
# professional is a mentee like one who signs up alone.
ROLE_OF: dict[str, str] = {"mentee": "mentee", "referral": "mentee", "mentor": "mentor"}
# Bumped whenever the consent wording changes, so each recorded consent names the text it agreed to.
CONSENT_VERSION = "2026-12-v2"
