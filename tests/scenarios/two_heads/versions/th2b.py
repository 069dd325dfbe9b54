"""add users.city

Revision ID: th2b
Revises: th01
"""
import sqlalchemy as sa
from alembic import op

revision = "th2b"
down_revision = 'th01'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("users", sa.Column("city", sa.Text))


def downgrade():
    op.drop_column("users", "city")
