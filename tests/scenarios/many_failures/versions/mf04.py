"""create t4

Revision ID: mf04
Revises: mf03
"""
import sqlalchemy as sa
from alembic import op

revision = "mf04"
down_revision = 'mf03'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("t4", sa.Column("id", sa.Integer, primary_key=True))
    op.create_index("ix_base_4", "base", ["id"])
    op.execute("SELECT 1")
    import os
    if os.environ.get("SCENARIO_LOG"):
        with open(os.environ["SCENARIO_LOG"], "a") as log:
            log.write(revision + "\n")


def downgrade():
    op.drop_index("ix_base_4", table_name="base")
    op.drop_table("t4")
