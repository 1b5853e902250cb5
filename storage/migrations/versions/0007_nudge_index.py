"""An index for the nudge's search (active conversations idle for a day), which read every
conversation row each time it ran.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 20:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_conversations_status_updated", "conversations", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_conversations_status_updated", table_name="conversations")
