"""Initial schema: datasets, models, versions, aliases and their audit, runs, lineage, audit log.

Revision ID: 0001
Revises: 
"""

from alembic import op
import sqlalchemy as sa



revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('alias_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('model_name', sa.String(length=63), nullable=False),
    sa.Column('alias', sa.String(length=32), nullable=False),
    sa.Column('from_version', sa.Integer(), nullable=True),
    sa.Column('to_version', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), server_default='', nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alias_events'))
    )
    with op.batch_alter_table('alias_events', schema=None) as batch_op:
        batch_op.create_index('ix_alias_events_model_alias', ['model_name', 'alias'], unique=False)

    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=256), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_table('dataset_versions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('content_sha256', sa.String(length=64), nullable=False),
    sa.Column('artifact_sha256', sa.String(length=64), nullable=False),
    sa.Column('row_count', sa.BigInteger(), nullable=False),
    sa.Column('schema', sa.JSON(), nullable=False),
    sa.Column('statistics', sa.JSON(), nullable=True),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('parents', sa.JSON(), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=True),
    sa.Column('retention_class', sa.String(length=63), nullable=True),
    sa.Column('pii_columns', sa.JSON(), nullable=False),
    sa.Column('subject_column', sa.String(length=128), nullable=True),
    sa.Column('subjects_sha256', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='active', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dataset_versions')),
    sa.UniqueConstraint('name', 'content_sha256', name='uq_dataset_versions_name_content'),
    sa.UniqueConstraint('name', 'version', name='uq_dataset_versions_name_version')
    )
    op.create_table('lineage_edges',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('src_kind', sa.String(length=32), nullable=False),
    sa.Column('src_id', sa.String(length=128), nullable=False),
    sa.Column('dst_kind', sa.String(length=32), nullable=False),
    sa.Column('dst_id', sa.String(length=128), nullable=False),
    sa.Column('relation', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lineage_edges')),
    sa.UniqueConstraint('src_kind', 'src_id', 'dst_kind', 'dst_id', 'relation', name='uq_lineage_edges_edge')
    )
    with op.batch_alter_table('lineage_edges', schema=None) as batch_op:
        batch_op.create_index('ix_lineage_edges_dst', ['dst_kind', 'dst_id'], unique=False)
        batch_op.create_index('ix_lineage_edges_src', ['src_kind', 'src_id'], unique=False)

    op.create_table('models',
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('owner', sa.String(length=128), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_models'))
    )
    op.create_table('runs',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('pipeline', sa.String(length=63), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('code_version', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_pipeline', ['pipeline'], unique=False)

    op.create_table('model_versions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('model_name', sa.String(length=63), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('artifact_sha256', sa.String(length=64), nullable=False),
    sa.Column('artifact_format', sa.String(length=32), nullable=False),
    sa.Column('signature', sa.JSON(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('dataset_version_ids', sa.JSON(), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=True),
    sa.Column('code_version', sa.String(length=64), nullable=True),
    sa.Column('seed', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tainted', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('taint_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['model_name'], ['models.name'], name=op.f('fk_model_versions_model_name_models')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_versions')),
    sa.UniqueConstraint('model_name', 'version', name='uq_model_versions_name_version')
    )
    op.create_table('aliases',
    sa.Column('model_name', sa.String(length=63), nullable=False),
    sa.Column('alias', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_name', 'version'], ['model_versions.model_name', 'model_versions.version'], name='fk_aliases_model_version'),
    sa.PrimaryKeyConstraint('model_name', 'alias', name=op.f('pk_aliases'))
    )



def downgrade() -> None:

    op.drop_table('aliases')
    op.drop_table('model_versions')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_pipeline')

    op.drop_table('runs')
    op.drop_table('models')
    with op.batch_alter_table('lineage_edges', schema=None) as batch_op:
        batch_op.drop_index('ix_lineage_edges_src')
        batch_op.drop_index('ix_lineage_edges_dst')

    op.drop_table('lineage_edges')
    op.drop_table('dataset_versions')
    op.drop_table('audit_log')
    with op.batch_alter_table('alias_events', schema=None) as batch_op:
        batch_op.drop_index('ix_alias_events_model_alias')

    op.drop_table('alias_events')

