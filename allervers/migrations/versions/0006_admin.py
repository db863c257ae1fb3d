"""admin: roles, invitations, audit log, organisation settings, local places overrides

Revision ID: 0006_admin
Revises: 0005_erasure_tombstones
Create Date: 2026-12-01 19:55:00

Owner while wave 2 is built in parallel: admin console helper. Fill upgrade()/downgrade(); keep the revision chain.
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401
from sqlalchemy.dialects import postgresql

import allervers.database  # noqa: F401

revision = '0006_admin'
down_revision = '0005_erasure_tombstones'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('target_type', sa.String(length=40), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=True),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', allervers.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['workers.id'], name=op.f('fk_audit_entries_actor_id_workers'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_audit_entries_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entries'))
    )
    op.create_index(op.f('ix_audit_entries_organisation_id'), 'audit_entries', ['organisation_id'], unique=False)
    op.create_index(op.f('ix_audit_entries_action'), 'audit_entries', ['action'], unique=False)
    op.create_index(op.f('ix_audit_entries_created_at'), 'audit_entries', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_table('audit_entries')
