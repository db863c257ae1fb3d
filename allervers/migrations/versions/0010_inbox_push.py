"""inbox at phone size: workers' Web Push subscriptions; indexes for the lists and the timeline

Revision ID: 0010_inbox_push
Revises: 0009_routing
Create Date: 2026-12-01 23:45:00
"""
import sqlalchemy as sa
from alembic import op

import kernel.database

revision = '0010_inbox_push'
down_revision = '0013_outreach'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('push_subscriptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.Integer(), nullable=False),
    sa.Column('endpoint', sa.Text(), nullable=False),
    sa.Column('p256dh', sa.String(length=200), nullable=False),
    sa.Column('auth', sa.String(length=100), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('created_at', kernel.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['worker_id'], ['workers.id'], name=op.f('fk_push_subscriptions_worker_id_workers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_subscriptions')),
    sa.UniqueConstraint('endpoint', name='uq_push_subscriptions_endpoint')
    )
    op.create_index(op.f('ix_push_subscriptions_worker_id'), 'push_subscriptions', ['worker_id'], unique=False)
    op.create_index('ix_messages_conversation_created', 'messages', ['conversation_id', 'created_at'], unique=False)
    op.create_index('ix_conversations_org_status_closed', 'conversations', ['organisation_id', 'status', 'closed_at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_conversations_org_status_closed', table_name='conversations')
    op.drop_index('ix_messages_conversation_created', table_name='messages')
    op.drop_index(op.f('ix_push_subscriptions_worker_id'), table_name='push_subscriptions')
    op.drop_table('push_subscriptions')
