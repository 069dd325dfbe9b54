"""create accounts with a mood enum

Revision ID: pf01
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "pf01"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("accounts", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("mood", sa.Enum("happy", "sad", name="mood")))


def downgrade():
    op.drop_table("accounts")
    sa.Enum(name="mood").drop(op.get_bind())
