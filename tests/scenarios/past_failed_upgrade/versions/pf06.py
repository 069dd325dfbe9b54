"""add people.nickname

Revision ID: pf06
Revises: pf05
"""
import sqlalchemy as sa
from alembic import op

revision = "pf06"
down_revision = "pf05"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("people", sa.Column("nickname", sa.String(50)))


def downgrade():
    op.drop_column("people", "nickname")
    raise RuntimeError("the nickname backfill cannot be undone")  # the defect: raises after dropping the column
