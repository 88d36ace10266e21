"""security: keyed link-code hashes, per-code and global link-failure counters

- link_codes.failed_attempts: attempts to redeem a code after it was used or expired.
- link_failure_windows: failed link attempts of everybody per clock hour; linking pauses for
  everyone when `linking.max_failed_global_per_hour` is reached.
- Codes are now stored as HMAC-SHA256 with a pepper (LINK_CODE_PEPPER or var/secrets/…), so
  codes issued before this revision (plain SHA-256) can no longer match: outstanding ones are
  expired here — staff reissue them (`make link-code`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 05:58:49.065854
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'link_failure_windows',
        sa.Column('hour', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('hour', name=op.f('pk_link_failure_windows')),
    )
    with op.batch_alter_table('link_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failed_attempts', sa.Integer(), server_default='0',
                                      nullable=False))
    link_codes = sa.table('link_codes', sa.column('used_at', sa.DateTime(timezone=True)),
                          sa.column('expires_at', sa.DateTime(timezone=True)))
    op.execute(link_codes.update().where(link_codes.c.used_at.is_(None))
               .values(expires_at=dt.datetime.now(dt.UTC)))


def downgrade() -> None:
    with op.batch_alter_table('link_codes', schema=None) as batch_op:
        batch_op.drop_column('failed_attempts')
    op.drop_table('link_failure_windows')
