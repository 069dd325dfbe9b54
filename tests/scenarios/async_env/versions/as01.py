"""create tasks with a state enum

Revision ID: as01
Revises: 
"""
import sqlalchemy as sa
from alembic import op

revision = "as01"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("tasks", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("title", sa.String(200), nullable=False),
                        sa.Column("state", sa.Enum("todo", "done", name="task_state"), nullable=False))


def downgrade():
    op.drop_table("tasks")
    sa.Enum(name="task_state").drop(op.get_bind())
