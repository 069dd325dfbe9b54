"""create accounts with a mood enum

Revision ID: ec01
Revises: 
"""
# dbops: irreversible
import sqlalchemy as sa
from alembic import op

revision = "ec01"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("accounts", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("mood", sa.Enum("happy", "sad", name="mood")))


def downgrade():
    pass
