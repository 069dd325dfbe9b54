"""add people.email with an index

Revision ID: pf04
Revises: pf03
"""
import sqlalchemy as sa
from alembic import op

revision = "pf04"
down_revision = "pf03"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("people", sa.Column("email", sa.String(200)))
    op.create_index("ix_people_email", "people", ["email"])


def downgrade():
    op.drop_index("ix_people_email", table_name="people")
    op.drop_column("people", "email")
