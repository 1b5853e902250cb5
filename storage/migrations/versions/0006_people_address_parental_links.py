"""Whoever fills the questionnaire in: how a person is addressed (tu or vous), whether they
blocked the bot, one nudge per conversation, the flow of each profile, how each consent was
given, and the links a parent confirms an under-15's sign-up through.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("people") as batch:
        batch.add_column(sa.Column("address", sa.String(length=4), nullable=True))
        batch.add_column(sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("nudged_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("profiles") as batch:
        batch.add_column(sa.Column("flow", sa.String(length=32), nullable=True))
    op.execute("UPDATE profiles SET flow = role WHERE flow IS NULL")
    with op.batch_alter_table("profiles") as batch:
        batch.alter_column("flow", existing_type=sa.String(length=32), nullable=False)
    with op.batch_alter_table("consents") as batch:
        batch.add_column(sa.Column("method", sa.String(length=24), nullable=True))
    op.create_table(
        "parental_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("agreed", sa.Boolean(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_parental_links_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parental_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_parental_links_token_hash")),
    )
    op.create_index(
        op.f("ix_parental_links_profile_id"), "parental_links", ["profile_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_parental_links_profile_id"), table_name="parental_links")
    op.drop_table("parental_links")
    with op.batch_alter_table("consents") as batch:
        batch.drop_column("method")
    with op.batch_alter_table("profiles") as batch:
        batch.drop_column("flow")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("nudged_at")
    with op.batch_alter_table("people") as batch:
        batch.drop_column("blocked_at")
        batch.drop_column("address")
