"""create t2

Revision ID: mf02
Revises: mf01
"""
import sqlalchemy as sa
from alembic import op

revision = "mf02"
down_revision = 'mf01'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("t2", sa.Column("id", sa.Integer, primary_key=True))
    op.create_index("ix_base_2", "base", ["id"])
    op.execute("SELECT 1")
    import os
    if os.environ.get("SCENARIO_LOG"):
        with open(os.environ["SCENARIO_LOG"], "a") as log:
            log.write(revision + "\n")


def downgrade():
    op.drop_index("ix_base_2", table_name="base")
    op.drop_table("t2")
