"""add users.mood enum

Revision ID: le02
Revises: le01
"""
import sqlalchemy as sa
from alembic import op

revision = "le02"
down_revision = 'le01'
branch_labels = None
depends_on = None


def upgrade():
    mood = sa.Enum("happy", "sad", name="mood")
    mood.create(op.get_bind())
    op.add_column("users", sa.Column("mood", mood))


def downgrade():
    op.drop_column("users", "mood")
