"""an index whose downgrade drops it in an autocommit block, then raises

The drop is committed before the error, so the failed downgrade's rollback
does not bring the index back: the schema is no longer the upgrade's.

Revision ID: df02
Revises: df01
"""
from alembic import op


revision = "df02"
down_revision = "df01"
branch_labels = None
depends_on = None


def upgrade():
    import os
    if os.environ.get("SCENARIO_LOG"):  # the test counts the upgrades that really ran
        with open(os.environ["SCENARIO_LOG"], "a") as log:
            log.write(revision + "\n")
    op.create_index("ix_t_name", "t", ["name"])


def downgrade():
    with op.get_context().autocommit_block():
        op.drop_index("ix_t_name", table_name="t", postgresql_concurrently=True)
    raise RuntimeError("broken after the autocommit block")
