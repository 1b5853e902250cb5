"""Persistence of mentorat-bot: SQLAlchemy 2 async models, repositories, unit of work, migrations.

It knows tables and transactions, nothing about Telegram.
"""
