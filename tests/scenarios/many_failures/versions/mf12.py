"""create t12 (downgrade changes a comment)

Revision ID: mf12
Revises: mf11
"""
import sqlalchemy as sa
from alembic import op

revision = "mf12"
down_revision = 'mf11'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("t12", sa.Column("id", sa.Integer, primary_key=True))
    op.create_index("ix_base_12", "base", ["id"])
    op.execute("SELECT 1")
    import os
    if os.environ.get("SCENARIO_LOG"):
        with open(os.environ["SCENARIO_LOG"], "a") as log:
            log.write(revision + "\n")


def downgrade():
    op.drop_index("ix_base_12", table_name="base")
    op.drop_table("t12")
    op.execute("COMMENT ON TABLE base IS 'changed by mf12'")
