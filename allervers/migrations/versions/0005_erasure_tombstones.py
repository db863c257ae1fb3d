"""erasure: tombstones of erased platform identities (hardening)

Revision ID: 0005_erasure_tombstones
Revises: 0004_sessions
Create Date: 2026-12-01 19:55:00

A keyed hash of (channel, platform message id) per recent inbound message of an erased person:
platform retries after an erasure are duplicates (conversations/tombstones.py).
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import kernel.database  # noqa: F401

revision = '0005_erasure_tombstones'
down_revision = '0004_sessions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('erasure_tombstones',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('created_at', kernel.database.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_erasure_tombstones'))
    )
    with op.batch_alter_table('erasure_tombstones', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_erasure_tombstones_created_at'), ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('erasure_tombstones', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_erasure_tombstones_created_at'))
    op.drop_table('erasure_tombstones')
