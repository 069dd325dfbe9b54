"""an index: a revision that round-trips

Revision ID: ua03
Revises: ua02
"""
from alembic import op

from ua_log import ran

revision = "ua03"
down_revision = "ua02"
branch_labels = None
depends_on = None


def upgrade():
    ran("ua03")
    op.create_index("ix_t_id", "t", ["id"])


def downgrade():
    op.drop_index("ix_t_id", table_name="t")
