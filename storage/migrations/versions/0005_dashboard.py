"""The staff dashboard: sign-in links, the audit log, funnel events per journey, capacity set
from the dashboard.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("journey", sa.String(length=32), nullable=True))
    with op.batch_alter_table("funnel_events") as batch:
        batch.add_column(sa.Column("journey", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("language", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("source", sa.String(length=64), nullable=True))
        batch.create_index(batch.f("ix_funnel_events_journey"), ["journey"], unique=False)
    with op.batch_alter_table("associations") as batch:
        batch.add_column(sa.Column("weekly_capacity", sa.Integer(), nullable=True))
    op.create_table(
        "sign_in_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("session_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sign_in_links_token_hash")),
    )
    op.create_index(
        op.f("ix_sign_in_links_expires_at"), "sign_in_links", ["expires_at"], unique=False
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.BigInteger(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=120), nullable=True),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index(op.f("ix_sign_in_links_expires_at"), table_name="sign_in_links")
    op.drop_table("sign_in_links")
    with op.batch_alter_table("associations") as batch:
        batch.drop_column("weekly_capacity")
    with op.batch_alter_table("funnel_events") as batch:
        batch.drop_index(batch.f("ix_funnel_events_journey"))
        batch.drop_column("source")
        batch.drop_column("language")
        batch.drop_column("journey")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("journey")
