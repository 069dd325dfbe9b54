"""create people, mood again

Revision ID: ec02
Revises: ec01
"""
import sqlalchemy as sa
from alembic import op

revision = "ec02"
down_revision = 'ec01'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("people", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("mood", sa.Enum("happy", "sad", name="mood")))


def downgrade():
    op.drop_table("people")
