"""followups: appointments noted with a person (and their reminder), "Ça a marché ?" follow-ups

Revision ID: 0014_followups
Revises: 0009_routing
Create Date: 2026-12-01 23:45:00
"""
import sqlalchemy as sa
from alembic import op

import kernel.database

revision = '0014_followups'
down_revision = '0009_routing'
branch_labels = None
depends_on = None


def _common(table: str) -> list:
    return [
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('conversation_id', sa.Integer(), nullable=False),
        sa.Column('contact_id', sa.Integer(), nullable=False),
        sa.Column('worker_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'],
                                name=op.f(f'fk_{table}_organisation_id_organisations'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'],
                                name=op.f(f'fk_{table}_conversation_id_conversations'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'],
                                name=op.f(f'fk_{table}_contact_id_contacts'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['worker_id'], ['workers.id'],
                                name=op.f(f'fk_{table}_worker_id_workers'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{table}')),
    ]


def upgrade() -> None:
    when = kernel.database.UTCDateTime(timezone=True)
    op.create_table('appointments', *_common('appointments'),
                    sa.Column('starts_at', when, nullable=False),
                    sa.Column('place_name', sa.String(length=200), nullable=False),
                    sa.Column('place_address', sa.String(length=300), nullable=False),
                    sa.Column('place_id', sa.String(length=200), nullable=True),
                    sa.Column('map_link', sa.String(length=600), nullable=False),
                    sa.Column('status', sa.String(length=12), nullable=False),
                    sa.Column('remind_at', when, nullable=True),
                    sa.Column('reminder_status', sa.String(length=12), nullable=False),
                    sa.Column('reminder_sent_at', when, nullable=True),
                    sa.Column('created_at', when, nullable=False),
                    sa.Column('updated_at', when, nullable=False))
    op.create_table('followups', *_common('followups'),
                    sa.Column('outcome', sa.String(length=20), nullable=False),
                    sa.Column('days', sa.Integer(), nullable=False),
                    sa.Column('due_at', when, nullable=False),
                    sa.Column('status', sa.String(length=12), nullable=False),
                    sa.Column('agreed_at', when, nullable=False),
                    sa.Column('sent_at', when, nullable=True),
                    sa.Column('answer', sa.String(length=12), nullable=True),
                    sa.Column('answered_at', when, nullable=True),
                    sa.Column('created_at', when, nullable=False))
    for table in ('appointments', 'followups'):
        for column in ('organisation_id', 'conversation_id', 'contact_id'):
            op.create_index(op.f(f'ix_{table}_{column}'), table, [column], unique=False)
    op.create_index('ix_appointments_reminder', 'appointments', ['reminder_status', 'remind_at'], unique=False)
    op.create_index('ix_followups_due', 'followups', ['status', 'due_at'], unique=False)


def downgrade() -> None:
    op.drop_table('followups')
    op.drop_table('appointments')
