"""training authoring: one open course draft per trainer (partial unique index)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25 10:00:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('training_drafts', schema=None) as batch_op:
        batch_op.create_index('uq_training_drafts_open', ['telegram_user_id'], unique=True,
                              sqlite_where=sa.text("status = 'open'"),
                              postgresql_where=sa.text("status = 'open'"))


def downgrade() -> None:
    with op.batch_alter_table('training_drafts', schema=None) as batch_op:
        batch_op.drop_index('uq_training_drafts_open')
