"""admin: roles, invitations, audit log, organisation settings, local places overrides

Revision ID: 0006_admin
Revises: 0005_erasure_tombstones
Create Date: 2026-12-01 19:55:00

Owner while wave 2 is built in parallel: admin console helper. Fill upgrade()/downgrade(); keep the revision chain.
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import allervers.database  # noqa: F401

revision = '0006_admin'
down_revision = '0005_erasure_tombstones'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
