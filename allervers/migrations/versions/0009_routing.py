"""routing: how long a conversation may wait for a team before it is offered to the next one

Revision ID: 0009_routing
Revises: 0008_directory_overrides
Create Date: 2026-12-01 20:50:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009_routing'
down_revision = '0008_directory_overrides'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('teams') as batch:
        batch.add_column(sa.Column('escalate_after_minutes', sa.Integer(), server_default='30', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('teams') as batch:
        batch.drop_column('escalate_after_minutes')
