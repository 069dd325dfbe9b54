"""add an index

Revision ID: eo02
Revises: eo01
"""
import sqlalchemy as sa
from alembic import op

revision = "eo02"
down_revision = 'eo01'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_tickets_state", "tickets", ["state"])


def downgrade():
    op.drop_index("ix_tickets_state", table_name="tickets")
