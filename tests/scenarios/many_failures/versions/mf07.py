"""create t7 (downgrade raises)

Revision ID: mf07
Revises: mf06
"""
import sqlalchemy as sa
from alembic import op

revision = "mf07"
down_revision = 'mf06'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("t7", sa.Column("id", sa.Integer, primary_key=True))
    op.create_index("ix_base_7", "base", ["id"])
    op.execute("SELECT 1")
    import os
    if os.environ.get("SCENARIO_LOG"):
        with open(os.environ["SCENARIO_LOG"], "a") as log:
            log.write(revision + "\n")


def downgrade():
    raise RuntimeError("this downgrade is broken on purpose")
