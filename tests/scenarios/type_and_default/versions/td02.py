"""widen users.phone

Revision ID: td02
Revises: td01
"""
import sqlalchemy as sa
from alembic import op

revision = "td02"
down_revision = 'td01'
branch_labels = None
depends_on = None


def upgrade():
    op.alter_column("users", "phone", type_=sa.Text(), existing_type=sa.String(20))


def downgrade():
    op.execute("COMMENT ON TABLE users IS NULL")
