"""outreach: sources, contact sources, consents per purpose, campaigns and recipients

Revision ID: 0013_outreach
Revises: 0009_routing
Create Date: 2026-12-01 23:25:05.176473
"""
from alembic import op
import sqlalchemy as sa
import kernel.database
from sqlalchemy.dialects import postgresql

revision = '0013_outreach'
down_revision = '0011_casework'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('consents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('asked_at', kernel.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('granted_at', kernel.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('text_version', sa.String(length=20), nullable=False),
    sa.Column('withdrawn_at', kernel.database.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_consents_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consents')),
    sa.UniqueConstraint('contact_id', 'purpose', name='uq_consents_contact_purpose')
    )
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consents_contact_id'), ['contact_id'], unique=False)

    op.create_table('outreach_sources',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=True),
    sa.Column('territory_code', sa.String(length=8), nullable=True),
    sa.Column('territory_label', sa.String(length=120), nullable=False),
    sa.Column('start_flow', sa.String(length=60), nullable=True),
    sa.Column('start_need', sa.String(length=60), nullable=True),
    sa.Column('flyer_lines', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', kernel.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_outreach_sources_organisation_id_organisations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_outreach_sources_team_id_teams'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outreach_sources')),
    sa.UniqueConstraint('code', name=op.f('uq_outreach_sources_code'))
    )
    with op.batch_alter_table('outreach_sources', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outreach_sources_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('audience', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('messages', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('reminder_text', sa.Text(), nullable=False),
    sa.Column('reminder_after_hours', sa.Integer(), nullable=False),
    sa.Column('reminder_started_at', kernel.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('scheduled_at', kernel.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_at', kernel.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', kernel.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', kernel.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['workers.id'], name=op.f('fk_campaigns_created_by_id_workers'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_campaigns_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns'))
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaigns_organisation_id'), ['organisation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_campaigns_status'), ['status'], unique=False)

    op.create_table('contact_sources',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('first', sa.Boolean(), nullable=False),
    sa.Column('at', kernel.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_sources_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_contact_sources_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['source_id'], ['outreach_sources.id'], name=op.f('fk_contact_sources_source_id_outreach_sources'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_sources')),
    sa.UniqueConstraint('conversation_id', 'source_id', name='uq_contact_sources_conversation')
    )
    with op.batch_alter_table('contact_sources', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_sources_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_contact_sources_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contact_sources_source_id'), ['source_id'], unique=False)

    op.create_table('campaign_recipients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.Column('queued_at', kernel.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.String(length=40), nullable=False),
    sa.Column('reminder_message_id', sa.Integer(), nullable=True),
    sa.Column('reminder_state', sa.String(length=10), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_recipients_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_campaign_recipients_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_campaign_recipients_message_id_messages'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['reminder_message_id'], ['messages.id'], name=op.f('fk_campaign_recipients_reminder_message_id_messages'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_recipients')),
    sa.UniqueConstraint('campaign_id', 'contact_id', name='uq_campaign_recipients_contact')
    )
    with op.batch_alter_table('campaign_recipients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaign_recipients_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index('ix_campaign_recipients_state', ['campaign_id', 'state'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('campaign_recipients', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_recipients_state')
        batch_op.drop_index(batch_op.f('ix_campaign_recipients_contact_id'))

    op.drop_table('campaign_recipients')
    with op.batch_alter_table('contact_sources', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_sources_source_id'))
        batch_op.drop_index(batch_op.f('ix_contact_sources_contact_id'))
        batch_op.drop_index(batch_op.f('ix_contact_sources_at'))

    op.drop_table('contact_sources')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaigns_status'))
        batch_op.drop_index(batch_op.f('ix_campaigns_organisation_id'))

    op.drop_table('campaigns')
    with op.batch_alter_table('outreach_sources', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outreach_sources_organisation_id'))

    op.drop_table('outreach_sources')
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consents_contact_id'))

    op.drop_table('consents')

