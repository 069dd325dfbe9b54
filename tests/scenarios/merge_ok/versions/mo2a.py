"""add users.age

Revision ID: mo2a
Revises: mo01
"""
import sqlalchemy as sa
from alembic import op

revision = "mo2a"
down_revision = 'mo01'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("users", sa.Column("age", sa.Integer))


def downgrade():
    op.drop_column("users", "age")
