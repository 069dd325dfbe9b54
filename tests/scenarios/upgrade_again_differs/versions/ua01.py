"""create t and a marker table (the runs log themselves into runs.log beside the project)

Revision ID: ua01
Revises:
"""
import sqlalchemy as sa
from alembic import op

from ua_log import ran

revision = "ua01"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    ran("ua01")
    op.create_table("t", sa.Column("id", sa.Integer, primary_key=True))
    op.create_table("marker", sa.Column("n", sa.Integer))


def downgrade():
    op.drop_table("marker")
    op.drop_table("t")
