"""flows: per-organisation drafts and published revisions

Revision ID: 0007_flow_revisions
Revises: 0006_admin
Create Date: 2026-12-01 19:55:00

Owner while wave 2 is built in parallel: flows editor helper. Fill upgrade()/downgrade(); keep the revision chain.
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401
from sqlalchemy.dialects import postgresql

import kernel.database  # noqa: F401

revision = '0007_flow_revisions'
down_revision = '0006_admin'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('flow_drafts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('flow_id', sa.String(length=60), nullable=False),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_by', sa.Integer(), nullable=True),
    sa.Column('updated_at', kernel.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_flow_drafts_organisation_id_organisations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['updated_by'], ['workers.id'], name=op.f('fk_flow_drafts_updated_by_workers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flow_drafts')),
    sa.UniqueConstraint('organisation_id', 'flow_id', name=op.f('uq_flow_drafts_organisation_id_flow_id'))
    )
    op.create_index(op.f('ix_flow_drafts_organisation_id'), 'flow_drafts', ['organisation_id'], unique=False)
    op.create_table('flow_revisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('flow_id', sa.String(length=60), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('summary', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('published_by', sa.Integer(), nullable=True),
    sa.Column('published_at', kernel.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_flow_revisions_organisation_id_organisations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['published_by'], ['workers.id'], name=op.f('fk_flow_revisions_published_by_workers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flow_revisions')),
    sa.UniqueConstraint('organisation_id', 'flow_id', 'number', name=op.f('uq_flow_revisions_organisation_id_flow_id_number'))
    )
    op.create_index(op.f('ix_flow_revisions_organisation_id'), 'flow_revisions', ['organisation_id'], unique=False)


def downgrade() -> None:
    op.drop_table('flow_revisions')
    op.drop_table('flow_drafts')
