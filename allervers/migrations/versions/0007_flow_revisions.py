"""flows: per-organisation drafts and published revisions

Revision ID: 0007_flow_revisions
Revises: 0006_admin
Create Date: 2026-12-01 19:55:00

Owner while wave 2 is built in parallel: flows editor helper. Fill upgrade()/downgrade(); keep the revision chain.
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import allervers.database  # noqa: F401

revision = '0007_flow_revisions'
down_revision = '0006_admin'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
