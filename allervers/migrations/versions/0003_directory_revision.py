"""directory: revision counter bumped by imports (running servers reload their places when it changes)

Revision ID: 0003_directory_revision
Revises: 0002_directory
Create Date: 2026-12-03 09:12:41.118204
"""
import sqlalchemy as sa
from alembic import op

import kernel.database

revision = '0003_directory_revision'
down_revision = '0002_directory'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table('directory_revision',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('changed_at', kernel.database.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_directory_revision'))
    )
    # The one row every import bumps (directory.importer.bump_revision).
    op.bulk_insert(table, [{'id': 1, 'revision': 0, 'changed_at': None}])


def downgrade() -> None:
    op.drop_table('directory_revision')
