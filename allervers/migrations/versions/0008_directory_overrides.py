"""directory: what an organisation hides or corrects of a shared place, for its own people

Revision ID: 0008_directory_overrides
Revises: 0007_flow_revisions
Create Date: 2026-12-01 20:00:00
"""
import sqlalchemy as sa
from alembic import op

import kernel.database

revision = '0008_directory_overrides'
down_revision = '0007_flow_revisions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('directory_overrides',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('place_id', sa.Text(), nullable=False),
    sa.Column('hidden', sa.Boolean(), nullable=False),
    sa.Column('replacement_id', sa.Text(), nullable=True),
    sa.Column('updated_at', kernel.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_directory_overrides_organisation_id_organisations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['place_id'], ['directory_structures.id'], name=op.f('fk_directory_overrides_place_id_directory_structures'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['replacement_id'], ['directory_structures.id'], name=op.f('fk_directory_overrides_replacement_id_directory_structures'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_directory_overrides')),
    sa.UniqueConstraint('organisation_id', 'place_id', name=op.f('uq_directory_overrides_organisation_id_place_id'))
    )
    op.create_index(op.f('ix_directory_overrides_organisation_id'), 'directory_overrides', ['organisation_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_directory_overrides_organisation_id'), table_name='directory_overrides')
    op.drop_table('directory_overrides')
