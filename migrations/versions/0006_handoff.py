"""hand-off reliability: ticket states, one active ticket / waiting subscription (partial
unique indexes), update claims with a lease, button payloads and transcripts in the database

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 05:58:37.042362
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('callback_payloads',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_callback_payloads'))
    )
    with op.batch_alter_table('callback_payloads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callback_payloads_created_at'), ['created_at'], unique=False)

    op.create_table('chat_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('who', sa.String(length=8), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_lines'))
    )
    with op.batch_alter_table('chat_lines', schema=None) as batch_op:
        batch_op.create_index('ix_chat_lines_chat', ['chat_id', 'id'], unique=False)

    with op.batch_alter_table('processed_updates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.String(length=16), server_default='done', nullable=False))
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))

    # Duplicates from before the indexes existed: keep the oldest, close/drop the rest.
    op.execute("""
        UPDATE tickets SET status = 'closed', closed_by = 'migration:duplicate'
        WHERE status = 'open' AND id NOT IN (
            SELECT MIN(id) FROM tickets WHERE status = 'open' GROUP BY telegram_user_id)
    """)
    op.execute("""
        DELETE FROM stock_subscriptions
        WHERE notified_at IS NULL AND id NOT IN (
            SELECT MIN(id) FROM stock_subscriptions WHERE notified_at IS NULL
            GROUP BY telegram_user_id, product_id)
    """)
    with op.batch_alter_table('stock_subscriptions', schema=None) as batch_op:
        batch_op.create_index('uq_stock_subscriptions_waiting', ['telegram_user_id', 'product_id'], unique=True, sqlite_where=sa.text('notified_at IS NULL'), postgresql_where=sa.text('notified_at IS NULL'))

    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('uq_tickets_active_chat', ['telegram_user_id'], unique=True, sqlite_where=sa.text("status IN ('pending', 'open')"), postgresql_where=sa.text("status IN ('pending', 'open')"))



def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('uq_tickets_active_chat', sqlite_where=sa.text("status IN ('pending', 'open')"), postgresql_where=sa.text("status IN ('pending', 'open')"))
        batch_op.drop_column('answered_at')

    with op.batch_alter_table('stock_subscriptions', schema=None) as batch_op:
        batch_op.drop_index('uq_stock_subscriptions_waiting', sqlite_where=sa.text('notified_at IS NULL'), postgresql_where=sa.text('notified_at IS NULL'))

    with op.batch_alter_table('processed_updates', schema=None) as batch_op:
        batch_op.drop_column('lease_until')
        batch_op.drop_column('state')

    with op.batch_alter_table('chat_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_chat_lines_chat')

    op.drop_table('chat_lines')
    with op.batch_alter_table('callback_payloads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callback_payloads_created_at'))

    op.drop_table('callback_payloads')
