"""sessions: server-side worker sessions, web chat identities issued by the server (hardening)

Revision ID: 0004_sessions
Revises: 0003_directory_revision
Create Date: 2026-12-01 19:55:00

worker_sessions: kernel/sessions.py (the cookie holds a random token; only its SHA-256 is kept).
webchat_identities: conversations/webchat_identity.py (token hash -> the person's external id).
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import kernel.database  # noqa: F401

revision = '0004_sessions'
down_revision = '0003_directory_revision'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('worker_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('worker_id', sa.Integer(), nullable=True),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
              nullable=False),
    sa.Column('created_at', kernel.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', kernel.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['worker_id'], ['workers.id'], name=op.f('fk_worker_sessions_worker_id_workers'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_worker_sessions_token_hash'))
    )
    op.create_index('ix_worker_sessions_last_seen_at', 'worker_sessions', ['last_seen_at'], unique=False)
    op.create_index(op.f('ix_worker_sessions_worker_id'), 'worker_sessions', ['worker_id'], unique=False)
    op.create_table('webchat_identities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('external_id', sa.String(length=64), nullable=False),
    sa.Column('legacy', sa.Boolean(), nullable=False),
    sa.Column('created_at', kernel.database.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webchat_identities')),
    sa.UniqueConstraint('external_id', name=op.f('uq_webchat_identities_external_id')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_webchat_identities_token_hash'))
    )
    op.create_index(op.f('ix_webchat_identities_created_at'), 'webchat_identities', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_webchat_identities_created_at'), table_name='webchat_identities')
    op.drop_table('webchat_identities')
    op.drop_index(op.f('ix_worker_sessions_worker_id'), table_name='worker_sessions')
    op.drop_index('ix_worker_sessions_last_seen_at', table_name='worker_sessions')
    op.drop_table('worker_sessions')
