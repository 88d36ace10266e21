"""delivery worker: in-call marker, split-message progress, chat migrations, shared pace

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 05:58:26.338247
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chat_migrations',
    sa.Column('old_chat_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('new_chat_id', sa.BigInteger(), nullable=False),
    sa.Column('migrated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('old_chat_id', name=op.f('pk_chat_migrations'))
    )
    with op.batch_alter_table('chat_migrations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chat_migrations_new_chat_id'), ['new_chat_id'], unique=False)

    op.create_table('delivery_pace',
    sa.Column('key', sa.String(length=32), nullable=False),
    sa.Column('next_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_delivery_pace'))
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('progress_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('in_call_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('parts_sent', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('migrated_from', sa.BigInteger(), nullable=True))
        batch_op.create_index('ix_outbox_lease', ['status', 'lease_until'], unique=False)

    # The one shared send-slot row every worker reserves from (see bot/delivery/pacing.py).
    op.bulk_insert(sa.table('delivery_pace', sa.column('key', sa.String), sa.column('next_at', sa.Float)),
                   [{'key': 'global', 'next_at': 0.0}])


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_lease')
        batch_op.drop_column('migrated_from')
        batch_op.drop_column('parts_sent')
        batch_op.drop_column('in_call_at')

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('progress_at')

    op.drop_table('delivery_pace')
    with op.batch_alter_table('chat_migrations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chat_migrations_new_chat_id'))

    op.drop_table('chat_migrations')
