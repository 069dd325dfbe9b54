"""a column named after how often this upgrade ran: the second upgrade gives another schema

The downgrade drops the column it finds, but leaves the marker row, so the
schema after the downgrade is exactly the one before, and only upgrading
again shows the difference (d1 instead of d0); the last revision, so its last check comes after the walk.

Revision ID: ua04
Revises: ua03
"""
import sqlalchemy as sa
from alembic import op

from ua_log import ran

revision = "ua04"
down_revision = "ua03"
branch_labels = None
depends_on = None


def upgrade():
    ran("ua04")
    bind = op.get_bind()
    n = bind.execute(sa.text("SELECT count(*) FROM marker")).scalar_one()
    op.add_column("t", sa.Column(f"d{n}", sa.Integer))
    bind.execute(sa.text("INSERT INTO marker VALUES (1)"))


def downgrade():
    n = op.get_bind().execute(sa.text("SELECT count(*) FROM marker")).scalar_one()
    op.drop_column("t", f"d{n - 1}")
