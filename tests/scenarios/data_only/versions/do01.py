"""create users

Revision ID: do01
Revises: 
"""
import sqlalchemy as sa
from alembic import op

revision = "do01"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("status", sa.Enum("new", "active", name="user_status")),
                    sa.Column("name", sa.String(50)))


def downgrade():
    op.drop_table("users")
    sa.Enum(name="user_status").drop(op.get_bind())
