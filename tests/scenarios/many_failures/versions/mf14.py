"""create t14 (downgrade leaves an index)

Revision ID: mf14
Revises: mf13
"""
import sqlalchemy as sa
from alembic import op

revision = "mf14"
down_revision = 'mf13'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("t14", sa.Column("id", sa.Integer, primary_key=True))
    op.create_index("ix_base_14", "base", ["id"])
    op.execute("SELECT 1")
    import os
    if os.environ.get("SCENARIO_LOG"):
        with open(os.environ["SCENARIO_LOG"], "a") as log:
            log.write(revision + "\n")


def downgrade():
    op.drop_table("t14")
