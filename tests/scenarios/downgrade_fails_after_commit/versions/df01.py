"""create t

Revision ID: df01
Revises:
"""
import sqlalchemy as sa
from alembic import op


revision = "df01"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    import os
    if os.environ.get("SCENARIO_LOG"):  # the test counts the upgrades that really ran
        with open(os.environ["SCENARIO_LOG"], "a") as log:
            log.write(revision + "\n")
    op.create_table("t", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.Text))


def downgrade():
    op.drop_table("t")
