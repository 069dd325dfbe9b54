"""backfill names

Revision ID: do02
Revises: do01
"""
import sqlalchemy as sa
from alembic import op

revision = "do02"
down_revision = 'do01'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("UPDATE users SET name = 'anonymous' WHERE name IS NULL")


def downgrade():
    pass
