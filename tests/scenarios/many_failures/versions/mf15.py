"""create t15 (downgrade changes a comment)

Revision ID: mf15
Revises: mf14
"""
import sqlalchemy as sa
from alembic import op

revision = "mf15"
down_revision = 'mf14'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("t15", sa.Column("id", sa.Integer, primary_key=True))
    op.create_index("ix_base_15", "base", ["id"])
    op.execute("SELECT 1")
    import os
    if os.environ.get("SCENARIO_LOG"):
        with open(os.environ["SCENARIO_LOG"], "a") as log:
            log.write(revision + "\n")


def downgrade():
    op.drop_index("ix_base_15", table_name="base")
    op.drop_table("t15")
    op.execute("COMMENT ON TABLE base IS 'changed by mf15'")
