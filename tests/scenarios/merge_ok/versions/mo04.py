"""index users.city

Revision ID: mo04
Revises: mo03
"""
import sqlalchemy as sa
from alembic import op

revision = "mo04"
down_revision = 'mo03'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_users_city", "users", ["city"])


def downgrade():
    op.drop_index("ix_users_city", table_name="users")
