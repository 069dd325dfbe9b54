"""index the titles

Revision ID: as02
Revises: as01
"""
import sqlalchemy as sa
from alembic import op

revision = "as02"
down_revision = "as01"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_tasks_title", "tasks", ["title"])


def downgrade():
    op.drop_index("ix_tasks_title", table_name="tasks")
