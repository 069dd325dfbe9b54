"""create base

Revision ID: mf01
Revises: 
"""
import sqlalchemy as sa
from alembic import op

revision = "mf01"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("base", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("SELECT 1")
    import os
    if os.environ.get("SCENARIO_LOG"):
        with open(os.environ["SCENARIO_LOG"], "a") as log:
            log.write(revision + "\n")


def downgrade():
    op.drop_table("base")
