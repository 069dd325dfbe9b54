"""add users.age, no downgrade

Revision ID: md02
Revises: md01
"""
import sqlalchemy as sa
from alembic import op

revision = "md02"
down_revision = 'md01'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("users", sa.Column("age", sa.Integer))


def downgrade():
    pass
