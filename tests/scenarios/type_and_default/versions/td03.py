"""default users.name

Revision ID: td03
Revises: td02
"""
import sqlalchemy as sa
from alembic import op

revision = "td03"
down_revision = 'td02'
branch_labels = None
depends_on = None


def upgrade():
    op.alter_column("users", "name", server_default="anonymous")


def downgrade():
    op.execute("COMMENT ON TABLE users IS NULL")
