"""create t5 (downgrade leaves an index)

Revision ID: mf05
Revises: mf04
"""
import sqlalchemy as sa
from alembic import op

revision = "mf05"
down_revision = 'mf04'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("t5", sa.Column("id", sa.Integer, primary_key=True))
    op.create_index("ix_base_5", "base", ["id"])
    op.execute("SELECT 1")
    import os
    if os.environ.get("SCENARIO_LOG"):
        with open(os.environ["SCENARIO_LOG"], "a") as log:
            log.write(revision + "\n")


def downgrade():
    op.drop_table("t5")
