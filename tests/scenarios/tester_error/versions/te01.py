"""create a

Revision ID: te01
Revises: 
"""
import sqlalchemy as sa
from alembic import op

revision = "te01"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("a", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("a")
