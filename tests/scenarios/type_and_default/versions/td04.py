"""add users.age (fine)

Revision ID: td04
Revises: td03
"""
import sqlalchemy as sa
from alembic import op

revision = "td04"
down_revision = 'td03'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("users", sa.Column("age", sa.Integer))


def downgrade():
    op.drop_column("users", "age")
