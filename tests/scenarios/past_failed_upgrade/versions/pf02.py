"""add accounts.note

Revision ID: pf02
Revises: pf01
"""
import sqlalchemy as sa
from alembic import op

revision = "pf02"
down_revision = "pf01"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("accounts", sa.Column("note", sa.Text, nullable=True))


def downgrade():
    op.drop_column("accounts", "note")
