"""sessions: server-side worker sessions (hardening)

Revision ID: 0004_sessions
Revises: 0003_directory_revision
Create Date: 2026-12-01 19:55:00

Owner while wave 2 is built in parallel: sessions helper. Fill upgrade()/downgrade(); keep the revision chain.
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import allervers.database  # noqa: F401

revision = '0004_sessions'
down_revision = '0003_directory_revision'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
