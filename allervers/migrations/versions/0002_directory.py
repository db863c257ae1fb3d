"""directory: places (data·inclusion v1 structures and services)

Revision ID: 0002_directory
Revises: 0001_foundation
Create Date: 2026-11-22 10:28:34.304597
"""
from alembic import op
import sqlalchemy as sa
import kernel.database
from sqlalchemy.dialects import postgresql

revision = '0002_directory'
down_revision = '0001_foundation'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table('directory_structures',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('nom', sa.Text(), nullable=False),
    sa.Column('date_maj', sa.Date(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('lien_source', sa.Text(), nullable=True),
    sa.Column('siret', sa.String(length=14), nullable=True),
    sa.Column('adresse', sa.Text(), nullable=True),
    sa.Column('complement_adresse', sa.Text(), nullable=True),
    sa.Column('code_postal', sa.String(length=5), nullable=True),
    sa.Column('code_insee', sa.String(length=5), nullable=True),
    sa.Column('commune', sa.Text(), nullable=True),
    sa.Column('latitude', sa.Float(), nullable=True),
    sa.Column('longitude', sa.Float(), nullable=True),
    sa.Column('telephone', sa.Text(), nullable=True),
    sa.Column('courriel', sa.Text(), nullable=True),
    sa.Column('site_web', sa.Text(), nullable=True),
    sa.Column('horaires_accueil', sa.Text(), nullable=True),
    sa.Column('accessibilite_lieu', sa.Text(), nullable=True),
    sa.Column('reseaux_porteurs', JSON, nullable=False),
    sa.Column('origin', sa.String(length=20), nullable=False),
    sa.Column('created_at', kernel.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', kernel.database.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_directory_structures'))
    )
    op.create_table('directory_services',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('structure_id', sa.Text(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('nom', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('date_maj', sa.Date(), nullable=False),
    sa.Column('lien_source', sa.Text(), nullable=True),
    sa.Column('type', sa.String(length=50), nullable=True),
    sa.Column('thematiques', JSON, nullable=False),
    sa.Column('frais', sa.String(length=50), nullable=True),
    sa.Column('frais_precisions', sa.Text(), nullable=True),
    sa.Column('publics', JSON, nullable=False),
    sa.Column('publics_precisions', sa.Text(), nullable=True),
    sa.Column('conditions_acces', sa.Text(), nullable=True),
    sa.Column('adresse', sa.Text(), nullable=True),
    sa.Column('complement_adresse', sa.Text(), nullable=True),
    sa.Column('code_postal', sa.String(length=5), nullable=True),
    sa.Column('code_insee', sa.String(length=5), nullable=True),
    sa.Column('commune', sa.Text(), nullable=True),
    sa.Column('latitude', sa.Float(), nullable=True),
    sa.Column('longitude', sa.Float(), nullable=True),
    sa.Column('telephone', sa.Text(), nullable=True),
    sa.Column('courriel', sa.Text(), nullable=True),
    sa.Column('modes_accueil', JSON, nullable=False),
    sa.Column('zone_eligibilite', JSON, nullable=False),
    sa.Column('lien_mobilisation', sa.Text(), nullable=True),
    sa.Column('modes_mobilisation', JSON, nullable=False),
    sa.Column('mobilisable_par', JSON, nullable=False),
    sa.Column('mobilisation_precisions', sa.Text(), nullable=True),
    sa.Column('horaires_accueil', sa.Text(), nullable=True),
    sa.Column('origin', sa.String(length=20), nullable=False),
    sa.Column('created_at', kernel.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', kernel.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['structure_id'], ['directory_structures.id'], name=op.f('fk_directory_services_structure_id_directory_structures'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_directory_services'))
    )
    with op.batch_alter_table('directory_services', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_directory_services_structure_id'), ['structure_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('directory_services', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_directory_services_structure_id'))

    op.drop_table('directory_services')
    op.drop_table('directory_structures')
