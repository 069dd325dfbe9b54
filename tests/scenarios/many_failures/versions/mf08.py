"""create t8 (downgrade leaves an index)

Revision ID: mf08
Revises: mf07
"""
import sqlalchemy as sa
from alembic import op

revision = "mf08"
down_revision = 'mf07'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("t8", sa.Column("id", sa.Integer, primary_key=True))
    op.create_index("ix_base_8", "base", ["id"])
    op.execute("SELECT 1")
    import os
    if os.environ.get("SCENARIO_LOG"):
        with open(os.environ["SCENARIO_LOG"], "a") as log:
            log.write(revision + "\n")


def downgrade():
    op.drop_table("t8")
