"""create t11 (downgrade leaves an index)

Revision ID: mf11
Revises: mf10
"""
import sqlalchemy as sa
from alembic import op

revision = "mf11"
down_revision = 'mf10'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("t11", sa.Column("id", sa.Integer, primary_key=True))
    op.create_index("ix_base_11", "base", ["id"])
    op.execute("SELECT 1")
    import os
    if os.environ.get("SCENARIO_LOG"):
        with open(os.environ["SCENARIO_LOG"], "a") as log:
            log.write(revision + "\n")


def downgrade():
    op.drop_table("t11")
