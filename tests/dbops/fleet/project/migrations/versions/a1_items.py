"""items

Revision ID: a1
Revises:
"""

import sqlalchemy as sa

from alembic import op

revision = "a1"
down_revision = None


def upgrade():
    op.create_table("items", sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("name", sa.Text))


def downgrade():
    op.drop_table("items")
