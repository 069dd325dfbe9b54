"""a column: a revision that round-trips

Revision ID: df03
Revises: df02
"""
import sqlalchemy as sa
from alembic import op

from ua_log import ran

revision = "df03"
down_revision = "df02"
branch_labels = None
depends_on = None


def upgrade():
    ran("df03")
    op.add_column("t", sa.Column("note", sa.Text))


def downgrade():
    op.drop_column("t", "note")
