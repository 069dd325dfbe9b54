"""add users.age

Revision ID: th2a
Revises: th01
"""
import sqlalchemy as sa
from alembic import op

revision = "th2a"
down_revision = 'th01'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("users", sa.Column("age", sa.Integer))


def downgrade():
    op.drop_column("users", "age")
