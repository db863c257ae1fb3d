"""erasure: tombstones of erased platform identities (hardening)

Revision ID: 0005_erasure_tombstones
Revises: 0004_sessions
Create Date: 2026-12-01 19:55:00

Owner while wave 2 is built in parallel: logs/erasure helper. Fill upgrade()/downgrade(); keep the revision chain.
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import allervers.database  # noqa: F401

revision = '0005_erasure_tombstones'
down_revision = '0004_sessions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
