"""notes

Revision ID: b2
Revises: a1
"""

import sqlalchemy as sa

from alembic import op

revision = "b2"
down_revision = "a1"


def upgrade():
    op.create_table("notes", sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("body", sa.Text))


def downgrade():
    op.drop_table("notes")
