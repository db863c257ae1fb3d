"""admin: roles, invitations, audit log, organisation settings, local places overrides

Revision ID: 0006_admin
Revises: 0005_erasure_tombstones
Create Date: 2026-12-01 19:55:00

Owner while wave 2 is built in parallel: admin console helper. Fill upgrade()/downgrade(); keep the revision chain.
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401
from sqlalchemy.dialects import postgresql

import kernel.database  # noqa: F401

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
    sa.Column('created_at', kernel.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['workers.id'], name=op.f('fk_audit_entries_actor_id_workers'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_audit_entries_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entries'))
    )
    op.create_index(op.f('ix_audit_entries_organisation_id'), 'audit_entries', ['organisation_id'], unique=False)
    op.create_index(op.f('ix_audit_entries_action'), 'audit_entries', ['action'], unique=False)
    op.create_index(op.f('ix_audit_entries_created_at'), 'audit_entries', ['created_at'], unique=False)

    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retention_days', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('default_language', sa.String(length=8), server_default='fr', nullable=False))
    with op.batch_alter_table('teams', schema=None) as batch_op:
        batch_op.add_column(sa.Column('opening_hours', json, server_default='{}', nullable=False))
        batch_op.add_column(sa.Column('closed_on_holidays', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('out_of_hours_message', sa.Text(), server_default='', nullable=False))
    with op.batch_alter_table('territories', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=12), server_default='commune', nullable=False))
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_team_lead', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('languages', json, server_default='["fr"]', nullable=False))
        batch_op.add_column(sa.Column('topics', json, server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('schedule', json, server_default='{}', nullable=False))
        batch_op.add_column(sa.Column('invited_at', kernel.database.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('activated_at', kernel.database.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('deactivated_at', kernel.database.UTCDateTime(timezone=True), nullable=True))
    op.create_table('worker_invitations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=12), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', kernel.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', kernel.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', kernel.database.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['worker_id'], ['workers.id'], name=op.f('fk_worker_invitations_worker_id_workers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by_id'], ['workers.id'], name=op.f('fk_worker_invitations_created_by_id_workers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_invitations')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_worker_invitations_token_hash'))
    )
    op.create_index(op.f('ix_worker_invitations_worker_id'), 'worker_invitations', ['worker_id'], unique=False)


def downgrade() -> None:
    op.drop_table('worker_invitations')
    with op.batch_alter_table('workers', schema=None) as batch_op:
        for column in ('deactivated_at', 'activated_at', 'invited_at', 'schedule', 'topics', 'languages', 'is_team_lead'):
            batch_op.drop_column(column)
    with op.batch_alter_table('territories', schema=None) as batch_op:
        batch_op.drop_column('kind')
    with op.batch_alter_table('teams', schema=None) as batch_op:
        for column in ('out_of_hours_message', 'closed_on_holidays', 'opening_hours'):
            batch_op.drop_column(column)
    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.drop_column('default_language')
        batch_op.drop_column('retention_days')
    op.drop_table('audit_entries')
