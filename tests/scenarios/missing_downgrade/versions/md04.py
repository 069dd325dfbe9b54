"""add users.city (fine)

Revision ID: md04
Revises: md03
"""
import sqlalchemy as sa
from alembic import op

revision = "md04"
down_revision = 'md03'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("users", sa.Column("city", sa.Text))


def downgrade():
    op.drop_column("users", "city")
