"""create t13 (downgrade raises)

Revision ID: mf13
Revises: mf12
"""
import sqlalchemy as sa
from alembic import op

revision = "mf13"
down_revision = 'mf12'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("t13", sa.Column("id", sa.Integer, primary_key=True))
    op.create_index("ix_base_13", "base", ["id"])
    op.execute("SELECT 1")
    import os
    if os.environ.get("SCENARIO_LOG"):
        with open(os.environ["SCENARIO_LOG"], "a") as log:
            log.write(revision + "\n")


def downgrade():
    raise RuntimeError("this downgrade is broken on purpose")
