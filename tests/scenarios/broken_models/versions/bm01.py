"""create users

Revision ID: bm01
Revises: 
"""
import sqlalchemy as sa

from alembic import op

revision = "bm01"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(100), nullable=False),
        sa.Column("phone", sa.String(20)),
        sa.Column("name", sa.String(50)),
    )


def downgrade():
    op.drop_table("users")
