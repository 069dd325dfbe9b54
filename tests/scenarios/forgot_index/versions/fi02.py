"""add nickname and email index

Revision ID: fi02
Revises: fi01
"""
import sqlalchemy as sa
from alembic import op

revision = "fi02"
down_revision = 'fi01'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("users", sa.Column("nickname", sa.String(30)))
    op.create_index("ix_users_email", "users", ["email"])


def downgrade():
    op.drop_column("users", "nickname")
