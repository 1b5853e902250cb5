"""Persistence of mentorat-bot: the core's ports implemented with SQLAlchemy 2 (async).

Tables and the imperative mapping of `conversations.entities` (`tables`), the repositories and the
outbox, the payload codec, the unit of work, engines and migrations. It knows tables and
transactions, nothing about Telegram.
"""
