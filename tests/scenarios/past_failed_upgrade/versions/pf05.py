"""accounts.note becomes required

Revision ID: pf05
Revises: pf04
"""
import sqlalchemy as sa
from alembic import op

revision = "pf05"
down_revision = "pf04"
branch_labels = None
depends_on = None


def upgrade():
    op.alter_column("accounts", "note", existing_type=sa.Text, nullable=False, server_default="")


def downgrade():
    # the defect: the default goes, the column stays NOT NULL
    op.alter_column("accounts", "note", existing_type=sa.Text, server_default=None)
