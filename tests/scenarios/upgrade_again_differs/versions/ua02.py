"""a column named after how often this upgrade ran: the second upgrade gives another schema

The downgrade drops the column it finds, but leaves the marker row, so the
schema after the downgrade is exactly the one before, and only upgrading
again shows the difference (c1 instead of c0).

Revision ID: ua02
Revises: ua01
"""
import sqlalchemy as sa
from alembic import op

from ua_log import ran

revision = "ua02"
down_revision = "ua01"
branch_labels = None
depends_on = None


def upgrade():
    ran("ua02")
    bind = op.get_bind()
    n = bind.execute(sa.text("SELECT count(*) FROM marker")).scalar_one()
    op.add_column("t", sa.Column(f"c{n}", sa.Integer))
    bind.execute(sa.text("INSERT INTO marker VALUES (1)"))


def downgrade():
    n = op.get_bind().execute(sa.text("SELECT count(*) FROM marker")).scalar_one()
    op.drop_column("t", f"c{n - 1}")
