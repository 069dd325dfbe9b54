"""add users.city

Revision ID: mo2b
Revises: mo01
"""
import sqlalchemy as sa
from alembic import op

revision = "mo2b"
down_revision = 'mo01'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("users", sa.Column("city", sa.Text))


def downgrade():
    op.drop_column("users", "city")
