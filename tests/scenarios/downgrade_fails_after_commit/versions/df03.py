"""a column: a revision that round-trips

Revision ID: df03
Revises: df02
"""
import sqlalchemy as sa
from alembic import op


revision = "df03"
down_revision = "df02"
branch_labels = None
depends_on = None


def upgrade():
    import os
    if os.environ.get("SCENARIO_LOG"):  # the test counts the upgrades that really ran
        with open(os.environ["SCENARIO_LOG"], "a") as log:
            log.write(revision + "\n")
    op.add_column("t", sa.Column("note", sa.Text))


def downgrade():
    op.drop_column("t", "note")
