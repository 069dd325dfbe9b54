"""create t

Revision ID: df01
Revises:
"""
import sqlalchemy as sa
from alembic import op

from ua_log import ran

revision = "df01"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    ran("df01")
    op.create_table("t", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.Text))


def downgrade():
    op.drop_table("t")
